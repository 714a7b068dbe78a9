variable "name" {
  description = "Full name of the work queue (<prefix>-<topology queue name>). 1-80 characters."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.name))
    error_message = "name must be 1-80 characters of letters, digits, hyphens and underscores."
  }
}

variable "visibility_timeout_seconds" {
  description = "How long a received message stays invisible; must exceed the worker's handler deadline, and be at least six times the function timeout when a Lambda event source mapping consumes the queue. 0-43200."
  type        = number

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be from 0 to 43200."
  }
}

variable "receive_wait_time_seconds" {
  description = "Long-polling wait for ReceiveMessage. 1-20 (0, short polling, is refused: it costs empty receives)."
  type        = number

  validation {
    condition     = var.receive_wait_time_seconds >= 1 && var.receive_wait_time_seconds <= 20
    error_message = "receive_wait_time_seconds must be from 1 to 20 (long polling)."
  }
}

variable "message_retention_seconds" {
  description = "How long the work queue keeps a message. 60-1209600."
  type        = number

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be from 60 to 1209600."
  }
}

variable "max_message_size" {
  description = "Largest message in bytes. 1024-262144."
  type        = number

  validation {
    condition     = var.max_message_size >= 1024 && var.max_message_size <= 262144
    error_message = "max_message_size must be from 1024 to 262144."
  }
}

variable "dlq" {
  description = "The dead-letter queue: full name, how many receives before a message moves there (max_receive_count, 1-1000), and its retention. DLQ retention must be at least the work queue's: SQS keeps a message's original enqueue time when it is dead-lettered."
  type = object({
    name                      = string
    max_receive_count         = number
    message_retention_seconds = number
  })

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.dlq.name)) && var.dlq.max_receive_count >= 1 && var.dlq.max_receive_count <= 1000 && var.dlq.message_retention_seconds <= 1209600
    error_message = "dlq.name must be 1-80 characters of letters, digits, - and _; dlq.max_receive_count 1-1000; dlq.message_retention_seconds at most 1209600."
  }

  validation {
    condition     = var.dlq.message_retention_seconds >= var.message_retention_seconds
    error_message = "dlq.message_retention_seconds must be at least message_retention_seconds, or dead-lettered messages can expire before anyone looks at them."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key ARN for both queues. null: SSE-SQS (SQS-managed keys, no KMS cost). The AWS-managed alias/aws/sqs key is deliberately not offered: EventBridge cannot send to a queue encrypted with it."
  type        = string
  default     = null
}

variable "sender_rule_arns" {
  description = "ARNs of the EventBridge rules allowed to send to the work queue (the queue policy allows events.amazonaws.com only with aws:SourceArn among these)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for both queues."
  type        = map(string)
  default     = {}
}
