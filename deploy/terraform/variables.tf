################################################################################
# Compute target
################################################################################

variable "compute" {
  description = "Where the stage handlers run: \"ecs\" (the worker on ECS Fargate, scaled on queue backlog; the default) or \"lambda\" (one AWS Lambda function per stage queue behind SQS event source mappings, built from cmd/lambda). Both share the bus, queues, tables, topics and DLQ alarms; see README.md, \"Lambda or ECS\"."
  type        = string
  default     = "ecs"

  validation {
    condition     = contains(["ecs", "lambda"], var.compute)
    error_message = "compute must be \"ecs\" or \"lambda\"."
  }
}

################################################################################
# Naming and placement
################################################################################

variable "prefix" {
  description = "Resource prefix, the worker's CLOUDCOMMERCE_PREFIX. Every topology name becomes <prefix>-<name>; the EventBridge bus is named <prefix>. 2-32 characters: lowercase letters, digits and hyphens, starting with a letter (the longest derived name, an IAM role, must stay under 64 characters)."
  type        = string
  default     = "cloudcommerce"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 2-32 characters of lowercase letters, digits and hyphens, start with a letter and not end with a hyphen."
  }
}

variable "region" {
  description = "AWS region to deploy into, e.g. eu-west-1: the region of the aws provider the module is called with (a precondition on the event bus compares them). Spells ARNs in the IAM policies and is passed to the worker as AWS_REGION."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as eu-west-1 or us-east-2."
  }
}

variable "vpc_id" {
  description = "ID of the VPC that holds private_subnet_ids; the worker's security group is created in it. Required with compute = \"ecs\"; unused with \"lambda\" (the functions run outside any VPC)."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null ? var.compute != "ecs" : can(regex("^vpc-[0-9a-f]{8}([0-9a-f]{9})?$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0, and it is required when compute is \"ecs\"."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (no public IPs) for the worker tasks, ideally one per availability zone; required with compute = \"ecs\", unused with \"lambda\". They need a route to the AWS APIs (SQS, DynamoDB, EventBridge, SNS, ECR, CloudWatch Logs, Secrets Manager) through a NAT gateway or VPC endpoints, and to the payment gateway when payment_gateway is \"stripe\"."
  type        = list(string)
  default     = null

  validation {
    condition     = var.private_subnet_ids == null ? var.compute != "ecs" : length(var.private_subnet_ids) >= 1 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8}([0-9a-f]{9})?$", s))])
    error_message = "private_subnet_ids must hold at least one subnet ID like subnet-0123456789abcdef0 (two or more across availability zones are recommended), and it is required when compute is \"ecs\"."
  }
}

variable "tags" {
  description = "Extra tags for every taggable resource, merged with Application = \"cloudcommerce\" and Prefix = <prefix> (the module sets tags itself rather than relying on the caller's provider default_tags)."
  type        = map(string)
  default     = {}
}

################################################################################
# Worker image and task size
################################################################################

variable "image_tag" {
  description = "Tag of the worker image in the ECR repository this module creates (<prefix>/worker). Tags are immutable, so use a version or a git SHA, never a moving tag like latest. Required with compute = \"ecs\"; unused with \"lambda\" (no image, no ECR repository)."
  type        = string
  default     = null

  validation {
    condition     = var.image_tag == null ? var.compute != "ecs" : can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid Docker tag (up to 128 characters of letters, digits, _ . -) and not \"latest\", and it is required when compute is \"ecs\"."
  }
}

variable "ecr_keep_images" {
  description = "How many most recent images the ECR lifecycle policy keeps (older ones are expired). 1-1000."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_keep_images >= 1 && var.ecr_keep_images <= 1000 && floor(var.ecr_keep_images) == var.ecr_keep_images
    error_message = "ecr_keep_images must be a whole number from 1 to 1000."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384. task_memory must be a size Fargate allows for it."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "task_memory" {
  description = "Fargate task memory in MiB, 512-122880, in a combination Fargate allows with task_cpu (e.g. 512 CPU: 1024-4096 MiB)."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 122880 && floor(var.task_memory) == var.task_memory
    error_message = "task_memory must be a whole number of MiB from 512 to 122880."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the worker image: X86_64 or ARM64 (Graviton, cheaper per vCPU; the image must be built for it)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "container_user" {
  description = "UID[:GID] the worker container runs as. Must not be root (0); 65532 is the conventional unprivileged user of scratch and distroless images."
  type        = string
  default     = "65532:65532"

  validation {
    condition     = can(regex("^[0-9]+(:[0-9]+)?$", var.container_user)) && !can(regex("^0+(:|$)", var.container_user))
    error_message = "container_user must be a numeric non-zero UID, optionally with :GID (for example 65532:65532)."
  }
}

variable "use_fargate_spot" {
  description = "Run the worker mostly on Fargate Spot (about 70% cheaper; tasks get a two-minute SIGTERM warning, which the worker's drain handles). One task always stays on regular Fargate."
  type        = bool
  default     = false
}

################################################################################
# Worker behaviour (environment of the container)
################################################################################

variable "stage_concurrency" {
  description = "Handler pool size per stage (CLOUDCOMMERCE_INVENTORY_CONCURRENCY, _PAYMENT_, _SHIPPING_), 1-256 each."
  type = object({
    inventory = optional(number, 16)
    payment   = optional(number, 16)
    shipping  = optional(number, 16)
  })
  default = {}

  validation {
    condition     = alltrue([for n in values(var.stage_concurrency) : n >= 1 && n <= 256 && floor(n) == n])
    error_message = "Each stage_concurrency value must be a whole number from 1 to 256."
  }
}

variable "handler_timeout_seconds" {
  description = "Deadline for one message's handler (CLOUDCOMMERCE_HANDLER_TIMEOUT). Must be shorter than every stage queue's visibility timeout in topology.json, or a slow message becomes visible again while it is still being handled."
  type        = number
  default     = 20

  validation {
    condition     = var.handler_timeout_seconds >= 1 && alltrue([for q in local.queues : var.handler_timeout_seconds < q.visibility_timeout_seconds])
    error_message = "handler_timeout_seconds must be at least 1 and below every queue's visibility_timeout_seconds in deploy/topology.json."
  }
}

variable "shutdown_timeout_seconds" {
  description = "How long the worker drains in-flight work after SIGTERM (CLOUDCOMMERCE_SHUTDOWN_TIMEOUT). The container's stopTimeout is this plus stop_timeout_margin_seconds, and Fargate caps stopTimeout at 120, so 1-110."
  type        = number
  default     = 25

  validation {
    condition     = var.shutdown_timeout_seconds >= 1 && var.shutdown_timeout_seconds <= 110 && floor(var.shutdown_timeout_seconds) == var.shutdown_timeout_seconds
    error_message = "shutdown_timeout_seconds must be a whole number from 1 to 110."
  }
}

variable "stop_timeout_margin_seconds" {
  description = "Seconds ECS waits after the worker's own shutdown budget before SIGKILL (flushing deletes and events, exiting). 1-10; stopTimeout = shutdown_timeout_seconds + this, at most 120."
  type        = number
  default     = 5

  validation {
    condition     = var.stop_timeout_margin_seconds >= 1 && var.stop_timeout_margin_seconds <= 10 && var.shutdown_timeout_seconds + var.stop_timeout_margin_seconds <= 120
    error_message = "stop_timeout_margin_seconds must be 1-10 and shutdown_timeout_seconds + stop_timeout_margin_seconds at most 120 (the Fargate stopTimeout limit)."
  }
}

variable "log_level" {
  description = "Worker log level (CLOUDCOMMERCE_LOG_LEVEL): debug, info, warn or error."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "payment_gateway" {
  description = "Payment gateway the stage handlers charge through (CLOUDCOMMERCE_PAYMENT_GATEWAY): \"sandbox\" (no money moves) or \"stripe\" (needs stripe_secret_arn). null (the default) means \"stripe\" when stripe_secret_arn is set, else \"sandbox\"."
  type        = string
  default     = null

  validation {
    condition     = contains(["sandbox", "stripe"], coalesce(var.payment_gateway, "sandbox"))
    error_message = "payment_gateway must be \"sandbox\", \"stripe\" or null."
  }
}

variable "stripe_secret_arn" {
  description = "ARN of the Secrets Manager secret whose value is the Stripe secret key. Setting it selects the stripe gateway. ECS injects it as CLOUDCOMMERCE_STRIPE_SECRET_KEY at task start (a container `secrets` entry) and the Lambda functions read it at cold start (CLOUDCOMMERCE_STRIPE_SECRET_ARN), so the key never appears in Terraform state, the task definition or the function configuration. Required when payment_gateway is \"stripe\"; refused with \"sandbox\"."
  type        = string
  default     = null

  validation {
    condition     = var.stripe_secret_arn == null ? var.payment_gateway != "stripe" : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.stripe_secret_arn)) && var.payment_gateway != "sandbox"
    error_message = "stripe_secret_arn must be a Secrets Manager secret ARN; it is required when payment_gateway is \"stripe\" and refused when payment_gateway is \"sandbox\" (a key the worker would never use)."
  }
}

variable "intake" {
  description = "The worker's HTTP intake API (POST orders). enabled: listen on port (CLOUDCOMMERCE_INTAKE_ADDR) and require api_key_secret_arn; ingress_cidr_blocks: private CIDRs (e.g. a load balancer's subnets) allowed to reach it. No load balancer is created here."
  type = object({
    enabled             = optional(bool, false)
    port                = optional(number, 8080)
    ingress_cidr_blocks = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = var.intake.port >= 1024 && var.intake.port <= 65535 && var.intake.port != 9090 && alltrue([for c in var.intake.ingress_cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "intake.port must be 1024-65535 and not the ops port 9090; intake.ingress_cidr_blocks must be CIDR blocks other than 0.0.0.0/0."
  }

  validation {
    condition     = !(var.intake.enabled && var.compute == "lambda")
    error_message = "intake.enabled needs compute = \"ecs\": the HTTP intake is served by the worker process, not by the Lambda functions."
  }
}

variable "api_key_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the intake API key, injected as CLOUDCOMMERCE_API_KEY. Required when intake.enabled is true."
  type        = string
  default     = null

  validation {
    condition     = var.api_key_secret_arn == null ? !var.intake.enabled : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.api_key_secret_arn))
    error_message = "api_key_secret_arn must be a Secrets Manager secret ARN, and it is required when intake.enabled is true."
  }
}

variable "secrets_kms_key_arn" {
  description = "ARN of the customer-managed KMS key that encrypts the Stripe / API-key secrets, if they do not use Secrets Manager's default aws/secretsmanager key. The execution role gets kms:Decrypt on it, through Secrets Manager only."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) or null."
  }
}

variable "ops_ingress_cidr_blocks" {
  description = "Private CIDR blocks allowed to reach the worker's ops port 9090 (/metrics for Prometheus, /healthz, /readyz). Empty: no inbound traffic at all (ECS health checks run inside the container)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ops_ingress_cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "ops_ingress_cidr_blocks must be CIDR blocks other than 0.0.0.0/0."
  }
}

################################################################################
# Scaling
################################################################################

variable "min_tasks" {
  description = "Fewest worker tasks. 0 lets the service rest at zero when every stage queue is empty; a wake-up alarm starts one task when messages arrive (about 1-3 minutes of extra latency for the first order). 0-100."
  type        = number
  default     = 0

  validation {
    condition     = var.min_tasks >= 0 && var.min_tasks <= 100 && floor(var.min_tasks) == var.min_tasks
    error_message = "min_tasks must be a whole number from 0 to 100."
  }
}

variable "max_tasks" {
  description = "Most worker tasks, 1-100 and at least min_tasks. Mind DynamoDB and payment-gateway rate limits: each task runs stage_concurrency handlers per stage."
  type        = number
  default     = 10

  validation {
    condition     = var.max_tasks >= 1 && var.max_tasks <= 100 && floor(var.max_tasks) == var.max_tasks && var.max_tasks >= var.min_tasks
    error_message = "max_tasks must be a whole number from 1 to 100 and at least min_tasks."
  }
}

variable "target_backlog_per_task" {
  description = "Target tracking value: visible messages across the three stage queues per running task. Lower means more tasks and lower latency. Roughly (acceptable queueing delay in seconds) x (messages one task handles per second). 1-100000."
  type        = number
  default     = 100

  validation {
    condition     = var.target_backlog_per_task >= 1 && var.target_backlog_per_task <= 100000
    error_message = "target_backlog_per_task must be from 1 to 100000."
  }
}

variable "scale_out_cooldown_seconds" {
  description = "Seconds after a scale-out before target tracking may scale out again. 0-3600."
  type        = number
  default     = 60

  validation {
    condition     = var.scale_out_cooldown_seconds >= 0 && var.scale_out_cooldown_seconds <= 3600
    error_message = "scale_out_cooldown_seconds must be from 0 to 3600."
  }
}

variable "scale_in_cooldown_seconds" {
  description = "Seconds after a scale-in before target tracking may scale in again; longer avoids flapping on bursty traffic. 0-3600."
  type        = number
  default     = 300

  validation {
    condition     = var.scale_in_cooldown_seconds >= 0 && var.scale_in_cooldown_seconds <= 3600
    error_message = "scale_in_cooldown_seconds must be from 0 to 3600."
  }
}

################################################################################
# Lambda functions (compute = "lambda")
################################################################################

variable "lambda" {
  description = <<-EOT
    The Lambda compute target, used only with compute = "lambda" (one function per stage queue, all from the same zip).
    package_path: the zip holding the `bootstrap` binary (GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./cmd/lambda; zip -j lambda.zip bootstrap); required with compute = "lambda".
    memory_size: MB per function, 128-10240 (default 256; CPU grows with it).
    timeout_seconds: the function timeout, at least handler_timeout_seconds + 8 (the function's 3 s CLOUDCOMMERCE_DEADLINE_MARGIN plus 5 s to dead-letter and answer) and at most 900 (default 30). The stage queues' visibility timeout becomes max(topology.json's, 6 x this).
    batch_size: records per invocation, 1-10000 (default 10); above 10 needs maximum_batching_window_in_seconds >= 1. The records of a batch are handled concurrently (CLOUDCOMMERCE_LAMBDA_CONCURRENCY = min(batch_size, 1000)).
    maximum_batching_window_in_seconds: how long the mapping gathers a batch, 0-300 (default 0: every second is added to each of an order's three hops at low volume).
    maximum_concurrency: most concurrent invocations per stage (the mapping's scaling_config), 2-1000 (default 10).
  EOT
  type = object({
    package_path                       = optional(string)
    memory_size                        = optional(number, 256)
    timeout_seconds                    = optional(number, 30)
    batch_size                         = optional(number, 10)
    maximum_batching_window_in_seconds = optional(number, 0)
    maximum_concurrency                = optional(number, 10)
  })
  default = {}

  validation {
    condition     = var.compute != "lambda" || try(endswith(var.lambda.package_path, ".zip"), false)
    error_message = "lambda.package_path must be the path of the zip holding the bootstrap binary (ending in .zip); it is required when compute is \"lambda\"."
  }

  validation {
    condition     = var.lambda.memory_size >= 128 && var.lambda.memory_size <= 10240 && floor(var.lambda.memory_size) == var.lambda.memory_size
    error_message = "lambda.memory_size must be a whole number of MB from 128 to 10240."
  }

  validation {
    condition     = floor(var.lambda.timeout_seconds) == var.lambda.timeout_seconds && var.lambda.timeout_seconds <= 900 && (var.compute != "lambda" || var.lambda.timeout_seconds >= var.handler_timeout_seconds + 8)
    error_message = "lambda.timeout_seconds must be a whole number of at most 900 and at least handler_timeout_seconds + 8 (the function cancels handlers 3 s before its deadline and needs a few seconds more to dead-letter and answer)."
  }

  validation {
    condition     = var.lambda.batch_size >= 1 && var.lambda.batch_size <= 10000 && floor(var.lambda.batch_size) == var.lambda.batch_size && (var.lambda.batch_size <= 10 || var.lambda.maximum_batching_window_in_seconds >= 1)
    error_message = "lambda.batch_size must be a whole number from 1 to 10000, and at most 10 unless lambda.maximum_batching_window_in_seconds is at least 1 (an SQS event source mapping rule)."
  }

  validation {
    condition     = var.lambda.maximum_batching_window_in_seconds >= 0 && var.lambda.maximum_batching_window_in_seconds <= 300 && floor(var.lambda.maximum_batching_window_in_seconds) == var.lambda.maximum_batching_window_in_seconds
    error_message = "lambda.maximum_batching_window_in_seconds must be a whole number from 0 to 300."
  }

  validation {
    condition     = var.lambda.maximum_concurrency >= 2 && var.lambda.maximum_concurrency <= 1000 && floor(var.lambda.maximum_concurrency) == var.lambda.maximum_concurrency
    error_message = "lambda.maximum_concurrency must be a whole number from 2 to 1000 (the SQS event source mapping's limits)."
  }
}

################################################################################
# Logs, alarms, notifications
################################################################################

variable "log_retention_days" {
  description = "CloudWatch Logs retention for the worker's log group (compute = \"ecs\") or the functions' log groups (\"lambda\"), in days (one of the values CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "alarm_oldest_message_age_seconds" {
  description = "Alarm when the oldest message in a stage queue is older than this many seconds for alarm_oldest_message_age_periods minutes (the pipeline is stuck or under-scaled). 60-1209600."
  type        = number
  default     = 900

  validation {
    condition     = var.alarm_oldest_message_age_seconds >= 60 && var.alarm_oldest_message_age_seconds <= 1209600
    error_message = "alarm_oldest_message_age_seconds must be from 60 to 1209600 (14 days)."
  }
}

variable "alarm_oldest_message_age_periods" {
  description = "Consecutive one-minute periods above alarm_oldest_message_age_seconds before the age alarm fires. 1-60."
  type        = number
  default     = 3

  validation {
    condition     = var.alarm_oldest_message_age_periods >= 1 && var.alarm_oldest_message_age_periods <= 60 && floor(var.alarm_oldest_message_age_periods) == var.alarm_oldest_message_age_periods
    error_message = "alarm_oldest_message_age_periods must be a whole number from 1 to 60."
  }
}

variable "alarm_no_tasks_with_backlog_minutes" {
  description = "Alarm when messages wait in the stage queues while no worker task runs for this many consecutive minutes (wake-up or task start is failing). Longer than a task's start time: 3-60."
  type        = number
  default     = 10

  validation {
    condition     = var.alarm_no_tasks_with_backlog_minutes >= 3 && var.alarm_no_tasks_with_backlog_minutes <= 60 && floor(var.alarm_no_tasks_with_backlog_minutes) == var.alarm_no_tasks_with_backlog_minutes
    error_message = "alarm_no_tasks_with_backlog_minutes must be a whole number from 3 to 60."
  }
}

variable "alarm_subscriptions" {
  description = "Who receives the operational alarms (<prefix>-alarms topic). name: a stable key; protocol: email, sms or https; endpoint: address, E.164 phone number or URL. Email subscriptions must be confirmed from the mail SNS sends."
  type = list(object({
    name     = string
    protocol = string
    endpoint = string
  }))
  default = []

  validation {
    condition = alltrue([for s in var.alarm_subscriptions :
      (s.protocol == "email" && can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", s.endpoint))) ||
      (s.protocol == "sms" && can(regex("^\\+[1-9][0-9]{6,14}$", s.endpoint))) ||
      (s.protocol == "https" && startswith(s.endpoint, "https://"))
    ]) && length(distinct([for s in var.alarm_subscriptions : s.name])) == length(var.alarm_subscriptions)
    error_message = "Each alarm subscription needs a unique name and protocol email (an address), sms (E.164, e.g. +447700900123) or https (an https:// URL)."
  }
}

variable "notification_subscriptions" {
  description = "Customer-notification subscriptions on the <prefix>-notifications topic. name: a stable key (not the address, which would land in resource addresses); protocol: email or sms (also the channel it filters on); endpoint: address or E.164 phone number; events: which notification events to receive (default: all events of topology.json's topic). Each gets a filter policy on the event and channel message attributes."
  type = list(object({
    name     = string
    protocol = string
    endpoint = string
    events   = optional(list(string))
  }))
  default = []

  validation {
    condition = alltrue([for s in var.notification_subscriptions :
      (s.protocol == "email" && can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", s.endpoint))) ||
      (s.protocol == "sms" && can(regex("^\\+[1-9][0-9]{6,14}$", s.endpoint)))
    ]) && length(distinct([for s in var.notification_subscriptions : s.name])) == length(var.notification_subscriptions)
    error_message = "Each notification subscription needs a unique name and protocol email (an address) or sms (E.164, e.g. +447700900123)."
  }

  validation {
    condition     = alltrue([for s in var.notification_subscriptions : s.events == null ? true : length(s.events) > 0 && alltrue([for e in s.events : contains(local.topic.events, e)])])
    error_message = "notification_subscriptions[*].events must be a non-empty subset of the topic events in deploy/topology.json."
  }
}

################################################################################
# Encryption and data protection
################################################################################

variable "kms" {
  description = "Encryption keys. Default: AWS-managed encryption (SSE-SQS for queues, alias/aws/sns for the notifications topic, the aws/dynamodb key for tables). create_key = true creates one customer-managed key (rotation on) used for queues, topics, tables, logs and ECR; key_arn uses an existing key instead, whose policy must then grant what aws_kms_key.this's policy grants (EventBridge, CloudWatch alarms, CloudWatch Logs). deletion_window_in_days: 7-30."
  type = object({
    create_key              = optional(bool, false)
    key_arn                 = optional(string)
    deletion_window_in_days = optional(number, 30)
  })
  default = {}

  validation {
    condition     = !(var.kms.create_key && var.kms.key_arn != null)
    error_message = "Set kms.create_key or kms.key_arn, not both."
  }

  validation {
    condition     = var.kms.key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms.key_arn))
    error_message = "kms.key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); aliases are not accepted by every service used here."
  }

  validation {
    condition     = var.kms.deletion_window_in_days >= 7 && var.kms.deletion_window_in_days <= 30
    error_message = "kms.deletion_window_in_days must be from 7 to 30."
  }
}

variable "deletion_protection" {
  description = "Turn on DynamoDB deletion protection for the four tables. Set false (and apply) before terraform destroy."
  type        = bool
  default     = true
}

################################################################################
# Prometheus (compute = "ecs")
################################################################################

variable "prometheus" {
  description = <<-EOT
    Prometheus metrics on ECS. enabled (default true): an AWS Distro for OpenTelemetry collector sidecar in every worker task scrapes the worker's /metrics on 127.0.0.1:9090 and remote-writes to Amazon Managed Service for Prometheus; false removes the sidecar and every Prometheus resource (to scrape the tasks with your own Prometheus instead, see README.md, "Prometheus").
    workspace_id: an existing workspace (ws-...) to write to; null (the default) creates a <prefix> workspace with an alert manager definition that routes alerts to the <prefix>-alarms topic. Either way the rule files of deploy/prometheus/rules are loaded into the workspace as one rule-groups namespace per file, <prefix>-<file name>.
    collector_image: the ADOT collector image, pinned to a version. scrape_interval_seconds: 10-300 (default 30).
    Unused with compute = "lambda" (the functions serve no /metrics).
  EOT
  type = object({
    enabled                 = optional(bool, true)
    workspace_id            = optional(string)
    collector_image         = optional(string, "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0")
    scrape_interval_seconds = optional(number, 30)
  })
  default = {}

  validation {
    condition     = var.prometheus.workspace_id == null || can(regex("^ws-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.prometheus.workspace_id))
    error_message = "prometheus.workspace_id must be an Amazon Managed Service for Prometheus workspace ID like ws-12345678-abcd-1234-abcd-123456789012, or null to create one."
  }

  validation {
    condition     = var.prometheus.scrape_interval_seconds >= 10 && var.prometheus.scrape_interval_seconds <= 300 && floor(var.prometheus.scrape_interval_seconds) == var.prometheus.scrape_interval_seconds
    error_message = "prometheus.scrape_interval_seconds must be a whole number from 10 to 300."
  }

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.prometheus.collector_image)) && !endswith(var.prometheus.collector_image, ":latest")
    error_message = "prometheus.collector_image must name an image with a pinned tag or digest (not latest)."
  }
}
