variable "function_name" {
  description = "Name of the function, <prefix>-<stage>; also names its role, log group (/aws/lambda/<name>) and alarms. 1-56 characters (the role name adds -lambda)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,56}$", var.function_name))
    error_message = "function_name must be 1-56 characters of letters, digits, hyphens and underscores."
  }
}

variable "package_path" {
  description = "Path of the deployment zip holding the bootstrap binary built from cmd/lambda for linux/arm64."
  type        = string
}

variable "memory_size" {
  description = "Memory of the function in MB, 128-10240."
  type        = number
}

variable "timeout_seconds" {
  description = "Function timeout in seconds, 1-900; the consumed queue's visibility timeout must be at least six times this."
  type        = number
}

variable "environment" {
  description = "Environment of the function (the variables internal/config/lambda.go reads). Plain values only: Lambda stores them in the function configuration and Terraform state, so secrets are passed by ARN."
  type        = map(string)
}

variable "role_policy_json" {
  description = "IAM policy JSON of what the function's handlers may call (built by the caller, which knows the resources). Logging to the function's own log group is added here."
  type        = string
}

variable "queue" {
  description = "The stage queue the event source mapping consumes: its ARN, visibility timeout and the receive count after which it dead-letters."
  type = object({
    arn                        = string
    visibility_timeout_seconds = number
    max_receive_count          = number
  })
}

variable "batch_size" {
  description = "Records per invocation, 1-10000 (above 10 only with a batching window)."
  type        = number
}

variable "maximum_batching_window_in_seconds" {
  description = "How long the mapping gathers records before invoking, 0-300 seconds."
  type        = number
}

variable "maximum_concurrency" {
  description = "Most concurrent invocations this mapping makes, 2-1000."
  type        = number
}

variable "log_retention_days" {
  description = "Retention of the function's CloudWatch log group, in days."
  type        = number
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the function's environment and log group, or null for AWS-managed encryption."
  type        = string
  default     = null
}

variable "alarm_topic_arn" {
  description = "SNS topic the function's Errors and Throttles alarms notify."
  type        = string
}

variable "tags" {
  description = "Tags for the module's resources."
  type        = map(string)
  default     = {}
}
