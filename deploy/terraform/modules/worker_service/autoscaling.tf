# Scaling on queue backlog.
#
# Target tracking keeps (visible messages in the stage queues) / (running
# tasks) near target_backlog_per_task. That ratio is undefined at zero tasks,
# so a step policy driven by an "idle with backlog" alarm sets the service to
# one task when messages wait and nothing runs; target tracking takes over from
# there. Scale-in is safe for in-flight work: ECS sends SIGTERM, the worker
# stops receiving, finishes what it holds within CLOUDCOMMERCE_SHUTDOWN_TIMEOUT
# (stopTimeout leaves a margin) and hands unstarted messages back to SQS.

locals {
  # Metric math ids, one per stage queue: visible_inventory, visible_payment...
  visible_metric_ids = { for stage, queue in var.queue_names : stage => "visible_${stage}" }
  total_backlog      = "(${join(" + ", values(local.visible_metric_ids))})"
  backlog_per_task   = "${local.total_backlog} / running_tasks"
  # 1 while messages wait and no task runs, else 0. FILL: Container Insights
  # publishes no RunningTaskCount for a service scaled to zero.
  idle_with_backlog = "IF(${local.total_backlog} > 0 AND FILL(running_tasks, 0) == 0, 1, 0)"

  service_resource_id = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"

  # The two alarms on idle_with_backlog: the quick one wakes the service, the
  # slow one tells a person that waking did not work.
  idle_alarms = {
    wake = {
      name        = "${var.name}-worker-wake-on-backlog"
      description = "Messages wait in a stage queue and no worker task runs: scale the worker service from 0 to 1."
      periods     = 1
      actions     = [aws_appautoscaling_policy.wake.arn]
      ok_actions  = []
    }
    no_running_tasks = {
      name        = "${var.name}-worker-no-tasks-with-backlog"
      description = "Messages have waited ${var.alarm_no_tasks_with_backlog_minutes} minutes with no running worker task: check the service's events (image pull, health check, subnets, capacity)."
      periods     = var.alarm_no_tasks_with_backlog_minutes
      actions     = [var.alarm_topic_arn]
      ok_actions  = [var.alarm_topic_arn]
    }
  }
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = local.service_resource_id
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks
  tags               = var.tags
}

resource "aws_appautoscaling_policy" "backlog_per_task" {
  name               = "${var.name}-worker-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.target_backlog_per_task
    scale_out_cooldown = var.scale_out_cooldown_seconds
    scale_in_cooldown  = var.scale_in_cooldown_seconds
    disable_scale_in   = false

    customized_metric_specification {
      dynamic "metrics" {
        for_each = var.queue_names
        content {
          id          = local.visible_metric_ids[metrics.key]
          label       = "Visible messages in ${metrics.value}"
          return_data = false

          metric_stat {
            stat = "Sum"
            metric {
              namespace   = "AWS/SQS"
              metric_name = "ApproximateNumberOfMessagesVisible"
              dimensions {
                name  = "QueueName"
                value = metrics.value
              }
            }
          }
        }
      }

      metrics {
        id          = "running_tasks"
        label       = "Running worker tasks"
        return_data = false

        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }
            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.this.name
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_task"
        label       = "Visible messages per running task"
        expression  = local.backlog_per_task
        return_data = true
      }
    }
  }
}

resource "aws_appautoscaling_policy" "wake" {
  name               = "${var.name}-worker-wake-from-zero"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  step_scaling_policy_configuration {
    # ExactCapacity, not +1: the alarm only fires while nothing runs, and
    # repeating it while the first task starts must not add more tasks.
    adjustment_type         = "ExactCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "idle_with_backlog" {
  for_each = local.idle_alarms

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = each.value.actions
  ok_actions          = each.value.ok_actions

  dynamic "metric_query" {
    for_each = var.queue_names
    content {
      id = local.visible_metric_ids[metric_query.key]

      metric {
        namespace   = "AWS/SQS"
        metric_name = "ApproximateNumberOfMessagesVisible"
        period      = 60
        stat        = "Maximum"
        dimensions = {
          QueueName = metric_query.value
        }
      }
    }
  }

  metric_query {
    id = "running_tasks"

    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      period      = 60
      stat        = "Maximum"
      dimensions = {
        ClusterName = aws_ecs_cluster.this.name
        ServiceName = aws_ecs_service.this.name
      }
    }
  }

  metric_query {
    id          = "idle_with_backlog"
    label       = "Backlog with no running task"
    expression  = local.idle_with_backlog
    return_data = true
  }

  tags = var.tags
}
