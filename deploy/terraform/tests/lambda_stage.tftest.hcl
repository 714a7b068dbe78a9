# modules/lambda_stage on its own: the function and its SQS event source
# mapping with partial batch responses.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  function_name    = "cloudcommerce-payment"
  package_path     = "tests/testdata/lambda.zip"
  memory_size      = 256
  timeout_seconds  = 30
  environment      = { CLOUDCOMMERCE_STAGE = "payment" }
  role_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  queue = {
    arn                        = "arn:aws:sqs:eu-west-1:123456789012:cloudcommerce-payment"
    visibility_timeout_seconds = 180
    max_receive_count          = 10
  }
  batch_size                         = 10
  maximum_batching_window_in_seconds = 0
  maximum_concurrency                = 10
  log_retention_days                 = 30
  alarm_topic_arn                    = "arn:aws:sns:eu-west-1:123456789012:cloudcommerce-alarms"
}

run "mapping_reports_batch_item_failures" {
  module {
    source = "./modules/lambda_stage"
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The mapping must use partial batch responses."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.this.event_source_arn == var.queue.arn && aws_lambda_event_source_mapping.this.batch_size == 10 && aws_lambda_event_source_mapping.this.scaling_config[0].maximum_concurrency == 10
    error_message = "The mapping reads the stage queue with the given batch size and concurrency."
  }
  assert {
    condition     = aws_lambda_function.this.runtime == "provided.al2023" && aws_lambda_function.this.handler == "bootstrap" && aws_lambda_function.this.architectures == tolist(["arm64"]) && aws_lambda_function.this.timeout == 30
    error_message = "The function runs the bootstrap binary on provided.al2023, arm64."
  }
  assert {
    condition     = aws_lambda_function.this.source_code_hash == filebase64sha256(var.package_path) && aws_lambda_function.this.environment[0].variables == var.environment
    error_message = "The function deploys the given zip with the given environment."
  }
  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.this)) == toset(["errors", "throttles"]) && alltrue([for a in aws_cloudwatch_metric_alarm.this : a.alarm_actions == toset([var.alarm_topic_arn])])
    error_message = "Errors and throttles alarm to the alarms topic."
  }
}

run "visibility_below_six_timeouts_is_refused" {
  module {
    source = "./modules/lambda_stage"
  }

  variables {
    queue = {
      arn                        = "arn:aws:sqs:eu-west-1:123456789012:cloudcommerce-payment"
      visibility_timeout_seconds = 179
      max_receive_count          = 10
    }
  }

  command         = plan
  expect_failures = [aws_lambda_event_source_mapping.this]
}

run "max_receive_count_below_five_is_refused" {
  module {
    source = "./modules/lambda_stage"
  }

  variables {
    queue = {
      arn                        = "arn:aws:sqs:eu-west-1:123456789012:cloudcommerce-payment"
      visibility_timeout_seconds = 180
      max_receive_count          = 4
    }
  }

  command         = plan
  expect_failures = [aws_lambda_event_source_mapping.this]
}

run "function_name_valid" {
  module {
    source = "./modules/lambda_stage"
  }
  command = plan
  variables {
    function_name = "a-b_C-${join("", [for i in range(50) : "x"])}"
  }
}

run "function_name_refused" {
  module {
    source = "./modules/lambda_stage"
  }
  command = plan
  variables {
    function_name = "cloudcommerce.payment"
  }
  expect_failures = [var.function_name]
}
