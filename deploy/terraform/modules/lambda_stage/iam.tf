# The function's execution role: what its handlers call (the caller's
# document, var.role_policy_json) plus writing to its own log group. No
# managed policy (AWSLambdaBasicExecutionRole would allow every log group,
# AWSLambdaSQSQueueExecutionRole every queue).

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    sid     = "LambdaInThisAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    # Confused-deputy guard: only Lambda acting for this account.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}-lambda"
  description        = "Execution role of the CloudCommerce function ${var.function_name}: its stage queue, DLQ, tables, bus, topic and log group only."
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "pipeline" {
  name   = "stage-handlers"
  role   = aws_iam_role.this.id
  policy = var.role_policy_json
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid     = "WriteOwnLogs"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    # Lambda names a stream per execution environment (date, version and a
    # random id), so the streams of this one log group are named by pattern.
    #tfsec:ignore:aws-iam-no-policy-wildcards Log stream names are chosen by Lambda at run time; scoped to this function's log group.
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "logs" {
  name   = "own-log-group"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.logs.json
}
