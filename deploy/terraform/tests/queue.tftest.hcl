# modules/queue on its own, with the settings topology.json gives the first
# stage queue: encryption at rest, the redrive to its own DLQ, the DLQ's
# redrive allow policy, and each validation failed once and passed at its
# edges.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name                       = "cloudcommerce-${jsondecode(file("../topology.json")).queues[0].name}"
  visibility_timeout_seconds = jsondecode(file("../topology.json")).queues[0].visibility_timeout_seconds
  receive_wait_time_seconds  = jsondecode(file("../topology.json")).queues[0].receive_wait_time_seconds
  message_retention_seconds  = jsondecode(file("../topology.json")).queues[0].message_retention_seconds
  max_message_size           = jsondecode(file("../topology.json")).queues[0].max_message_size_bytes
  dlq = {
    name                      = "cloudcommerce-${jsondecode(file("../topology.json")).queues[0].dlq.name}"
    max_receive_count         = jsondecode(file("../topology.json")).queues[0].dlq.max_receive_count
    message_retention_seconds = jsondecode(file("../topology.json")).queues[0].dlq.message_retention_seconds
  }
  sender_rule_arns = ["arn:aws:events:eu-west-1:123456789012:rule/cloudcommerce/cloudcommerce-order-placed"]
}

run "queue_is_encrypted_and_redriven_to_its_own_dlq" {
  module {
    source = "./modules/queue"
  }

  assert {
    condition     = aws_sqs_queue.this.sqs_managed_sse_enabled && aws_sqs_queue.dlq.sqs_managed_sse_enabled && aws_sqs_queue.this.kms_master_key_id == null
    error_message = "Without a customer key both queues use SSE-SQS."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.this.redrive_policy) == { deadLetterTargetArn = aws_sqs_queue.dlq.arn, maxReceiveCount = var.dlq.max_receive_count }
    error_message = "The queue redrives to its DLQ after dlq.max_receive_count receives."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_redrive_allow_policy.dlq.redrive_allow_policy) == { redrivePermission = "byQueue", sourceQueueArns = [aws_sqs_queue.this.arn] }
    error_message = "Only this queue may dead-letter into the DLQ."
  }
  assert {
    condition     = aws_sqs_queue.this.receive_wait_time_seconds == var.receive_wait_time_seconds && aws_sqs_queue.this.visibility_timeout_seconds == var.visibility_timeout_seconds && aws_sqs_queue.dlq.message_retention_seconds == var.dlq.message_retention_seconds
    error_message = "The queue takes the topology's long polling, visibility and retention."
  }
  assert {
    condition     = length(aws_sqs_queue_policy.this) == 1
    error_message = "A queue with sender rules gets a queue policy for them."
  }
}

run "customer_key_encrypts_both_queues" {
  module {
    source = "./modules/queue"
  }

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0000-0000-0000-000000000000"
  }

  assert {
    condition     = aws_sqs_queue.this.kms_master_key_id == var.kms_key_arn && aws_sqs_queue.dlq.kms_master_key_id == var.kms_key_arn && aws_sqs_queue.this.kms_data_key_reuse_period_seconds == 300
    error_message = "A customer key replaces SSE-SQS on the queue and its DLQ."
  }
}

run "accepts_edges" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    name                       = join("", [for i in range(80) : "q"])
    visibility_timeout_seconds = 43200
    receive_wait_time_seconds  = 1
    message_retention_seconds  = 1209600
    max_message_size           = 1024
    dlq                        = { name = join("", [for i in range(80) : "d"]), max_receive_count = 1000, message_retention_seconds = 1209600 }
  }
}

run "accepts_lower_edges" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    name                       = "q"
    visibility_timeout_seconds = 0
    receive_wait_time_seconds  = 20
    message_retention_seconds  = 60
    max_message_size           = 262144
    dlq                        = { name = "d", max_receive_count = 1, message_retention_seconds = 60 }
  }
}

run "refuses_name" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    name = "cloudcommerce.inventory"
  }

  expect_failures = [var.name]
}

run "refuses_visibility_timeout_seconds" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    visibility_timeout_seconds = 43201
  }

  expect_failures = [var.visibility_timeout_seconds]
}

run "refuses_receive_wait_time_seconds" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    receive_wait_time_seconds = 0
  }

  expect_failures = [var.receive_wait_time_seconds]
}

run "refuses_message_retention_seconds" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    message_retention_seconds = 59
  }

  expect_failures = [var.message_retention_seconds]
}

run "refuses_max_message_size" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    max_message_size = 262145
  }

  expect_failures = [var.max_message_size]
}

run "refuses_dlq_shape" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    dlq = { name = "cloudcommerce-inventory-dlq", max_receive_count = 0, message_retention_seconds = 1209600 }
  }

  expect_failures = [var.dlq]
}

run "refuses_dlq_shorter_retention" {
  module {
    source = "./modules/queue"
  }
  command = plan

  variables {
    dlq = { name = "cloudcommerce-inventory-dlq", max_receive_count = 10, message_retention_seconds = 3600 }
  }

  expect_failures = [var.dlq]
}
