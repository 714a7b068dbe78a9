# The module with compute = "lambda" against a mocked aws provider: one
# function per topology.json stage queue, none of the ECS resources, and the
# stage queues' visibility timeout raised for the event source mappings.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  region  = "eu-west-1"
  compute = "lambda"
  lambda  = { package_path = "tests/testdata/lambda.zip" }
  # Not a module input: the topology the assertions compare against.
  topo = jsondecode(file("../topology.json"))
}

run "one_function_per_stage_and_no_ecs" {
  assert {
    condition     = toset(keys(module.lambda_stage)) == toset([for q in var.topo.queues : q.stage])
    error_message = "compute = \"lambda\" makes one function per topology.json stage."
  }
  assert {
    condition     = alltrue([for q in var.topo.queues : output.lambda_function_names[q.stage] == "cloudcommerce-${q.stage}"])
    error_message = "Each function is named <prefix>-<stage>."
  }
  assert {
    condition     = length(module.worker_service) == 0 && length(aws_ecr_repository.worker) == 0 && length(aws_prometheus_workspace.this) == 0 && output.worker_environment == null
    error_message = "compute = \"lambda\" creates no worker service, ECR repository or Prometheus workspace."
  }
  assert {
    condition     = toset(keys(output.lambda_event_source_mapping_uuids)) == toset([for q in var.topo.queues : q.stage])
    error_message = "Each stage has its event source mapping."
  }
  assert {
    condition     = length(aws_dynamodb_table.this) == length(var.topo.tables) && length(aws_cloudwatch_metric_alarm.dlq_not_empty) == length(var.topo.queues) + length(var.topo.rules)
    error_message = "The tables and DLQ alarms are the same with either compute."
  }
}

run "stage_queue_visibility_is_six_function_timeouts" {
  variables {
    lambda = { package_path = "tests/testdata/lambda.zip", timeout_seconds = 40 }
  }

  assert {
    condition     = alltrue([for q in var.topo.queues : module.stage_queue[q.stage].visibility_timeout_seconds == max(q.visibility_timeout_seconds, 240)])
    error_message = "The stage queues' visibility timeout is max(topology.json's, 6 x the function timeout)."
  }
}

run "stripe_stages_read_the_key" {
  variables {
    stripe_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stripe-AbCdEf"
  }

  assert {
    condition     = local.lambda_stripe_stages == toset([for s, a in local.lambda_access : s if a.payment_gateway])
    error_message = "With Stripe, exactly the stages that charge or refund read the key."
  }
  assert {
    condition     = alltrue([for s in keys(module.lambda_stage) : contains(keys(local.lambda_table_grants[s]), "payments_ledger") == false])
    error_message = "With Stripe no stage gets the sandbox ledger."
  }
}
