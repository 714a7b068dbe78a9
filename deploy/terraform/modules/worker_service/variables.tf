variable "name" {
  description = "Name prefix for the cluster, service, roles, log group and alarms (the root module's prefix)."
  type        = string
}

variable "region" {
  description = "AWS region (for the awslogs driver and ARNs)."
  type        = string
}

variable "vpc_id" {
  description = "VPC for the worker's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks; no public IP is assigned."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "image" {
  description = "Full image reference, <repository url>:<tag>."
  type        = string
}

variable "image_repository_arn" {
  description = "ARN of the ECR repository holding the image; the execution role may pull from it and nothing else."
  type        = string
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
}

variable "memory" {
  description = "Fargate task memory in MiB."
  type        = number
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64."
  type        = string
}

variable "container_user" {
  description = "Non-root UID[:GID] for the container."
  type        = string
}

variable "environment" {
  description = "Plain environment variables for the worker (no secrets: these are stored in the task definition). CLOUDCOMMERCE_SHUTDOWN_TIMEOUT, CLOUDCOMMERCE_OPS_ADDR and CLOUDCOMMERCE_INTAKE_ADDR are set by this module."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables injected from Secrets Manager at task start: name => secret ARN. The execution role may read exactly these secrets."
  type        = map(string)
  default     = {}
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key of those secrets, if any (kms:Decrypt through Secrets Manager only)."
  type        = string
  default     = null
}

variable "shutdown_timeout_seconds" {
  description = "The worker's drain budget after SIGTERM (CLOUDCOMMERCE_SHUTDOWN_TIMEOUT)."
  type        = number
}

variable "stop_timeout_margin_seconds" {
  description = "Extra seconds ECS waits beyond shutdown_timeout_seconds before SIGKILL."
  type        = number
  default     = 5
}

variable "ops_port" {
  description = "Port of the worker's ops HTTP server (/metrics, /healthz, /readyz)."
  type        = number
  default     = 9090
}

variable "ops_ingress_cidr_blocks" {
  description = "CIDR blocks allowed to reach ops_port (Prometheus)."
  type        = list(string)
  default     = []
}

variable "intake" {
  description = "HTTP intake: enabled, port, and CIDR blocks allowed to reach it."
  type = object({
    enabled             = bool
    port                = number
    ingress_cidr_blocks = list(string)
  })
}

variable "log_retention_days" {
  description = "Retention of the worker's CloudWatch log group, in days."
  type        = number
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the log group, or null for CloudWatch Logs' default encryption."
  type        = string
  default     = null
}

variable "task_role_policy_json" {
  description = "IAM policy JSON of the task role: what the worker itself may call (built by the caller, which knows the resources)."
  type        = string
}

variable "use_fargate_spot" {
  description = "Prefer Fargate Spot, keeping one task on regular Fargate."
  type        = bool
  default     = false
}

variable "min_tasks" {
  description = "Autoscaling minimum (may be 0)."
  type        = number
}

variable "max_tasks" {
  description = "Autoscaling maximum."
  type        = number
}

variable "target_backlog_per_task" {
  description = "Target tracking value for visible messages per running task."
  type        = number
}

variable "scale_out_cooldown_seconds" {
  description = "Target tracking scale-out cooldown."
  type        = number
}

variable "scale_in_cooldown_seconds" {
  description = "Target tracking scale-in cooldown."
  type        = number
}

variable "queue_names" {
  description = "The stage queues the worker consumes, stage => queue name; their visible messages drive scaling."
  type        = map(string)

  validation {
    condition     = length(var.queue_names) >= 1 && alltrue([for s in keys(var.queue_names) : can(regex("^[a-z][a-z0-9_]*$", s))])
    error_message = "queue_names needs at least one entry, keyed by lowercase stage names usable as metric math ids."
  }
}

variable "alarm_topic_arn" {
  description = "SNS topic for the no-running-tasks-with-backlog alarm."
  type        = string
}

variable "alarm_no_tasks_with_backlog_minutes" {
  description = "Minutes of backlog with zero running tasks before alarming."
  type        = number
}

variable "tags" {
  description = "Tags for the module's resources."
  type        = map(string)
  default     = {}
}

variable "metrics_collector" {
  description = "The metrics sidecar: an AWS Distro for OpenTelemetry collector (image) that scrapes the worker's /metrics on 127.0.0.1:ops_port every scrape_interval_seconds (10-300) and remote-writes to remote_write_url, an Amazon Managed Service for Prometheus workspace's remote-write endpoint, signed with the task role (which needs aps:RemoteWrite on that workspace). null: no sidecar."
  type = object({
    image                   = string
    remote_write_url        = string
    scrape_interval_seconds = number
  })
  default = null

  validation {
    condition     = var.metrics_collector == null ? true : var.metrics_collector.scrape_interval_seconds >= 10 && var.metrics_collector.scrape_interval_seconds <= 300
    error_message = "metrics_collector.scrape_interval_seconds must be from 10 to 300."
  }
}
