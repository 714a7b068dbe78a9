# Every validation block of the module's variables (variables.tf), each
# failed by one run (expect_failures) with every other input valid, and
# passed by the edge runs at the end, which set the inputs to the extreme
# values the validations still accept. Plans only, with a mocked provider.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  region             = "eu-west-1"
  vpc_id             = "vpc-0123456789abcdef0"
  private_subnet_ids = ["subnet-0123456789abcdef0"]
  image_tag          = "v1.2.3"
}

run "refuses_compute" {
  command = plan

  variables {
    compute = "ec2"
  }

  expect_failures = [var.compute]
}

run "refuses_prefix" {
  command = plan

  variables {
    prefix = "Cloud_Commerce"
  }

  expect_failures = [var.prefix]
}

run "refuses_region" {
  command = plan

  variables {
    region = "europe-west1"
  }

  expect_failures = [var.region]
}

run "refuses_vpc_id" {
  command = plan

  variables {
    vpc_id = "vpc-123"
  }

  expect_failures = [var.vpc_id]
}

run "refuses_private_subnet_ids" {
  command = plan

  variables {
    private_subnet_ids = []
  }

  expect_failures = [var.private_subnet_ids]
}

run "refuses_image_tag" {
  command = plan

  variables {
    image_tag = "latest"
  }

  expect_failures = [var.image_tag]
}

run "refuses_ecr_keep_images" {
  command = plan

  variables {
    ecr_keep_images = 0
  }

  expect_failures = [var.ecr_keep_images]
}

run "refuses_task_cpu" {
  command = plan

  variables {
    task_cpu = 300
  }

  expect_failures = [var.task_cpu]
}

run "refuses_task_memory" {
  command = plan

  variables {
    task_memory = 256
  }

  expect_failures = [var.task_memory]
}

run "refuses_cpu_architecture" {
  command = plan

  variables {
    cpu_architecture = "arm64"
  }

  expect_failures = [var.cpu_architecture]
}

run "refuses_container_user" {
  command = plan

  variables {
    container_user = "0:0"
  }

  expect_failures = [var.container_user]
}

run "refuses_stage_concurrency" {
  command = plan

  variables {
    stage_concurrency = { inventory = 257 }
  }

  expect_failures = [var.stage_concurrency]
}

run "refuses_handler_timeout_seconds" {
  command = plan

  variables {
    handler_timeout_seconds = min([for q in jsondecode(file("../topology.json")).queues : q.visibility_timeout_seconds]...)
  }

  expect_failures = [var.handler_timeout_seconds]
}

run "refuses_shutdown_timeout_seconds" {
  command = plan

  variables {
    shutdown_timeout_seconds = 111
  }

  expect_failures = [var.shutdown_timeout_seconds]
}

run "refuses_stop_timeout_margin_seconds" {
  command = plan

  variables {
    stop_timeout_margin_seconds = 0
  }

  expect_failures = [var.stop_timeout_margin_seconds]
}

run "refuses_log_level" {
  command = plan

  variables {
    log_level = "trace"
  }

  expect_failures = [var.log_level]
}

run "refuses_payment_gateway" {
  command = plan

  variables {
    payment_gateway = "paypal"
  }

  expect_failures = [var.payment_gateway]
}

run "refuses_stripe_secret_arn" {
  command = plan

  variables {
    payment_gateway = "stripe"
  }

  expect_failures = [var.stripe_secret_arn]
}

run "refuses_intake_port" {
  command = plan

  variables {
    intake = { port = 9090 }
  }

  expect_failures = [var.intake]
}

run "refuses_intake_with_lambda" {
  command = plan

  variables {
    compute            = "lambda"
    lambda             = { package_path = "tests/testdata/lambda.zip" }
    intake             = { enabled = true }
    api_key_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-AbCdEf"
  }

  expect_failures = [var.intake]
}

run "refuses_api_key_secret_arn" {
  command = plan

  variables {
    intake = { enabled = true }
  }

  expect_failures = [var.api_key_secret_arn]
}

run "refuses_secrets_kms_key_arn" {
  command = plan

  variables {
    secrets_kms_key_arn = "alias/secrets"
  }

  expect_failures = [var.secrets_kms_key_arn]
}

run "refuses_ops_ingress_cidr_blocks" {
  command = plan

  variables {
    ops_ingress_cidr_blocks = ["0.0.0.0/0"]
  }

  expect_failures = [var.ops_ingress_cidr_blocks]
}

run "refuses_min_tasks" {
  command = plan

  variables {
    min_tasks = -1
  }

  expect_failures = [var.min_tasks]
}

run "refuses_max_tasks" {
  command = plan

  variables {
    min_tasks = 5
    max_tasks = 4
  }

  expect_failures = [var.max_tasks]
}

run "refuses_target_backlog_per_task" {
  command = plan

  variables {
    target_backlog_per_task = 0
  }

  expect_failures = [var.target_backlog_per_task]
}

run "refuses_scale_out_cooldown_seconds" {
  command = plan

  variables {
    scale_out_cooldown_seconds = 3601
  }

  expect_failures = [var.scale_out_cooldown_seconds]
}

run "refuses_scale_in_cooldown_seconds" {
  command = plan

  variables {
    scale_in_cooldown_seconds = -1
  }

  expect_failures = [var.scale_in_cooldown_seconds]
}

run "refuses_lambda_package_path" {
  command = plan

  variables {
    compute = "lambda"
    lambda  = { package_path = "tests/testdata/bootstrap" }
  }

  expect_failures = [var.lambda]
}

run "refuses_lambda_memory_size" {
  command = plan

  variables {
    lambda = { memory_size = 64 }
  }

  expect_failures = [var.lambda]
}

run "refuses_lambda_timeout_seconds" {
  command = plan

  variables {
    compute = "lambda"
    lambda  = { package_path = "tests/testdata/lambda.zip", timeout_seconds = 27 }
  }

  expect_failures = [var.lambda]
}

run "refuses_lambda_batch_size" {
  command = plan

  variables {
    lambda = { batch_size = 11 }
  }

  expect_failures = [var.lambda]
}

run "refuses_lambda_maximum_batching_window_in_seconds" {
  command = plan

  variables {
    lambda = { maximum_batching_window_in_seconds = 301 }
  }

  expect_failures = [var.lambda]
}

run "refuses_lambda_maximum_concurrency" {
  command = plan

  variables {
    lambda = { maximum_concurrency = 1 }
  }

  expect_failures = [var.lambda]
}

run "refuses_log_retention_days" {
  command = plan

  variables {
    log_retention_days = 2
  }

  expect_failures = [var.log_retention_days]
}

run "refuses_alarm_oldest_message_age_seconds" {
  command = plan

  variables {
    alarm_oldest_message_age_seconds = 59
  }

  expect_failures = [var.alarm_oldest_message_age_seconds]
}

run "refuses_alarm_oldest_message_age_periods" {
  command = plan

  variables {
    alarm_oldest_message_age_periods = 61
  }

  expect_failures = [var.alarm_oldest_message_age_periods]
}

run "refuses_alarm_no_tasks_with_backlog_minutes" {
  command = plan

  variables {
    alarm_no_tasks_with_backlog_minutes = 2
  }

  expect_failures = [var.alarm_no_tasks_with_backlog_minutes]
}

run "refuses_alarm_subscriptions" {
  command = plan

  variables {
    alarm_subscriptions = [{ name = "pager", protocol = "sms", endpoint = "07700900123" }]
  }

  expect_failures = [var.alarm_subscriptions]
}

run "refuses_notification_subscriptions_protocol" {
  command = plan

  variables {
    notification_subscriptions = [{ name = "hook", protocol = "https", endpoint = "https://example.com/hook" }]
  }

  expect_failures = [var.notification_subscriptions]
}

run "refuses_notification_subscriptions_events" {
  command = plan

  variables {
    notification_subscriptions = [{ name = "mail", protocol = "email", endpoint = "a@example.com", events = ["NoSuchEvent"] }]
  }

  expect_failures = [var.notification_subscriptions]
}

run "refuses_kms_both" {
  command = plan

  variables {
    kms = { create_key = true, key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0000-0000-0000-000000000000" }
  }

  expect_failures = [var.kms]
}

run "refuses_kms_key_arn" {
  command = plan

  variables {
    kms = { key_arn = "alias/cloudcommerce" }
  }

  expect_failures = [var.kms]
}

run "refuses_kms_deletion_window" {
  command = plan

  variables {
    kms = { create_key = true, deletion_window_in_days = 6 }
  }

  expect_failures = [var.kms]
}

run "refuses_prometheus_workspace_id" {
  command = plan

  variables {
    prometheus = { workspace_id = "ws-1" }
  }

  expect_failures = [var.prometheus]
}

run "refuses_prometheus_scrape_interval" {
  command = plan

  variables {
    prometheus = { scrape_interval_seconds = 5 }
  }

  expect_failures = [var.prometheus]
}

run "refuses_prometheus_collector_image" {
  command = plan

  variables {
    prometheus = { collector_image = "public.ecr.aws/aws-observability/aws-otel-collector:latest" }
  }

  expect_failures = [var.prometheus]
}

run "refuses_a_region_other_than_the_providers" {
  command = plan

  variables {
    region = "us-east-2"
  }

  expect_failures = [aws_cloudwatch_event_bus.orders]
}

run "accepts_ecs_edges" {
  command = plan

  # The provider's region must match var.region (a precondition).
  override_data {
    target = data.aws_region.current
    values = { name = "us-gov-west-1" }
  }

  variables {
    prefix                              = "a${join("", [for i in range(30) : "b"])}1"
    region                              = "us-gov-west-1"
    vpc_id                              = "vpc-01234567"
    private_subnet_ids                  = ["subnet-01234567", "subnet-0123456789abcdef0"]
    image_tag                           = "_${join("", [for i in range(127) : "a"])}"
    ecr_keep_images                     = 1000
    task_cpu                            = 16384
    task_memory                         = 122880
    cpu_architecture                    = "ARM64"
    container_user                      = "10"
    stage_concurrency                   = { inventory = 1, payment = 256, shipping = 256 }
    handler_timeout_seconds             = min([for q in jsondecode(file("../topology.json")).queues : q.visibility_timeout_seconds]...) - 1
    shutdown_timeout_seconds            = 110
    stop_timeout_margin_seconds         = 10
    log_level                           = "error"
    stripe_secret_arn                   = "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:stripe/key_+=.@-AbCdEf"
    payment_gateway                     = "stripe"
    intake                              = { enabled = true, port = 65535, ingress_cidr_blocks = ["10.0.0.0/8"] }
    api_key_secret_arn                  = "arn:aws:secretsmanager:us-gov-west-1:123456789012:secret:api-AbCdEf"
    secrets_kms_key_arn                 = "arn:aws:kms:us-gov-west-1:123456789012:key/0123abcd-0000-0000-0000-000000000000"
    ops_ingress_cidr_blocks             = ["10.1.0.0/16", "192.168.0.0/24"]
    min_tasks                           = 100
    max_tasks                           = 100
    target_backlog_per_task             = 100000
    scale_out_cooldown_seconds          = 0
    scale_in_cooldown_seconds           = 3600
    lambda                              = { memory_size = 10240, timeout_seconds = 900, batch_size = 10000, maximum_batching_window_in_seconds = 300, maximum_concurrency = 1000 }
    log_retention_days                  = 3653
    alarm_oldest_message_age_seconds    = 1209600
    alarm_oldest_message_age_periods    = 60
    alarm_no_tasks_with_backlog_minutes = 60
    alarm_subscriptions = [
      { name = "mail", protocol = "email", endpoint = "ops@example.com" },
      { name = "sms", protocol = "sms", endpoint = "+447700900123" },
      { name = "hook", protocol = "https", endpoint = "https://example.com/hook" },
    ]
    notification_subscriptions = [
      { name = "mail", protocol = "email", endpoint = "orders@example.com", events = [jsondecode(file("../topology.json")).topic.events[0]] },
      { name = "sms", protocol = "sms", endpoint = "+12025550123" },
    ]
    kms        = { create_key = true, deletion_window_in_days = 7 }
    prometheus = { workspace_id = "ws-12345678-abcd-1234-abcd-123456789012", scrape_interval_seconds = 300, collector_image = "public.ecr.aws/aws-observability/aws-otel-collector@sha256:${join("", [for i in range(64) : "a"])}" }
  }
}

run "accepts_ecs_lower_edges" {
  command = plan

  variables {
    compute                             = "ecs"
    prefix                              = "ab"
    ecr_keep_images                     = 1
    task_cpu                            = 256
    task_memory                         = 512
    stage_concurrency                   = { inventory = 256, payment = 1, shipping = 1 }
    handler_timeout_seconds             = 1
    shutdown_timeout_seconds            = 1
    stop_timeout_margin_seconds         = 1
    payment_gateway                     = "sandbox"
    intake                              = { port = 1024 }
    min_tasks                           = 0
    max_tasks                           = 1
    target_backlog_per_task             = 1
    scale_out_cooldown_seconds          = 3600
    scale_in_cooldown_seconds           = 0
    lambda                              = { memory_size = 128, timeout_seconds = 1, batch_size = 10, maximum_batching_window_in_seconds = 0, maximum_concurrency = 2 }
    log_retention_days                  = 1
    alarm_oldest_message_age_seconds    = 60
    alarm_oldest_message_age_periods    = 1
    alarm_no_tasks_with_backlog_minutes = 3
    kms                                 = { key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0000-0000-0000-000000000000", deletion_window_in_days = 30 }
    prometheus                          = { scrape_interval_seconds = 10 }
  }
}

run "accepts_lambda_without_vpc_subnets_or_image" {
  command = plan

  variables {
    compute            = "lambda"
    vpc_id             = null
    private_subnet_ids = null
    image_tag          = null
    lambda             = { package_path = "tests/testdata/lambda.zip", timeout_seconds = 28 }
  }
}
