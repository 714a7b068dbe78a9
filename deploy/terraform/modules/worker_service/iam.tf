# Two roles, never merged: the execution role is what ECS itself uses to start
# the task (pull the image, write logs, read the secrets); the task role is
# what the worker process may call. Neither has a managed policy attached.

data "aws_iam_policy_document" "assume_ecs_tasks" {
  statement {
    sid     = "EcsTasksInThisAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Confused-deputy guard: only ECS acting for this account.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-worker-execution"
  description        = "ECS task execution role of the CloudCommerce worker: pull its image, write its logs, read its secrets."
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_tasks.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid     = "EcrAuthorizationToken"
    effect  = "Allow"
    actions = ["ecr:GetAuthorizationToken"]
    # iam-wildcard-justified: ecr:GetAuthorizationToken has no resource type;
    # AWS accepts only "*" for it. It grants a registry login, not image access.
    resources = ["*"]
  }

  statement {
    sid       = "PullWorkerImage"
    effect    = "Allow"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.image_repository_arn]
  }

  statement {
    sid     = "WriteWorkerLogs"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    # The awslogs driver names each stream <stream-prefix>/<container>/<task
    # id>; task ids are assigned at launch, so only this log group's streams
    # with the worker's prefix can be named.
    #tfsec:ignore:aws-iam-no-policy-wildcards Log stream names contain the task id, unknown before launch; scoped to this log group and stream prefix.
    resources = ["${aws_cloudwatch_log_group.this.arn}:log-stream:${local.container_name}/*"]
  }

  dynamic "statement" {
    for_each = length(var.secrets) > 0 ? [1] : []
    content {
      sid       = "ReadWorkerSecrets"
      effect    = "Allow"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = sort(distinct(values(var.secrets)))
    }
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [var.secrets_kms_key_arn]
    content {
      sid       = "DecryptWorkerSecrets"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-worker-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

data "aws_iam_policy_document" "assume_task" {
  statement {
    sid     = "EcsTasksOfThisAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-worker-task"
  description        = "Task role of the CloudCommerce worker: exactly the SQS, DynamoDB, EventBridge, SNS (and KMS) calls it makes, on its own resources."
  assume_role_policy = data.aws_iam_policy_document.assume_task.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "worker-pipeline"
  role   = aws_iam_role.task.id
  policy = var.task_role_policy_json
}
