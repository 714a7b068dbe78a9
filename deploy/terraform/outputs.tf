output "event_bus_name" {
  description = "Name of the EventBridge bus producers put OrderPlaced events on (= prefix)."
  value       = aws_cloudwatch_event_bus.orders.name
}

output "event_bus_arn" {
  description = "ARN of the EventBridge bus (attach producer_policy_arn to producers rather than a plain events:PutEvents grant)."
  value       = aws_cloudwatch_event_bus.orders.arn
}

output "producer_policy_arn" {
  description = "IAM policy for producers: events:PutEvents on the bus for OrderPlaced and OrderCancelRequested from the pipeline's source only."
  value       = aws_iam_policy.producer.arn
}

output "rule_arns" {
  description = "EventBridge rule ARNs, by topology rule name."
  value       = { for name, r in aws_cloudwatch_event_rule.this : name => r.arn }
}

output "stage_queue_urls" {
  description = "Stage queue URLs, by stage (inventory, payment, shipping)."
  value       = { for stage, q in module.stage_queue : stage => q.queue_url }
}

output "stage_queue_arns" {
  description = "Stage queue ARNs, by stage."
  value       = { for stage, q in module.stage_queue : stage => q.queue_arn }
}

output "stage_dlq_urls" {
  description = "Stage dead-letter queue URLs, by stage (redrive with StartMessageMoveTask)."
  value       = { for stage, q in module.stage_queue : stage => q.dlq_url }
}

output "rule_target_dlq_urls" {
  description = "URLs of the DLQs where EventBridge puts events it could not deliver, by rule name."
  value       = { for name, q in aws_sqs_queue.rule_target_dlq : name => q.url }
}

output "table_names" {
  description = "DynamoDB table names, by topology role (orders, inventory, idempotency, payments_ledger)."
  value       = { for role, t in aws_dynamodb_table.this : role => t.name }
}

output "table_arns" {
  description = "DynamoDB table ARNs, by topology role."
  value       = { for role, t in aws_dynamodb_table.this : role => t.arn }
}

output "notifications_topic_arn" {
  description = "ARN of the customer notifications SNS topic."
  value       = aws_sns_topic.notifications.arn
}

output "alarms_topic_arn" {
  description = "ARN of the operational alarms SNS topic (subscribe on-call here)."
  value       = aws_sns_topic.alarms.arn
}

output "ecr_repository_url" {
  description = "ECR repository to push the worker image to: docker push <url>:<image_tag>. null with compute = \"lambda\"."
  value       = one(aws_ecr_repository.worker[*].repository_url)
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster; null with compute = \"lambda\"."
  value       = one(module.worker_service[*].cluster_name)
}

output "ecs_service_name" {
  description = "Name of the ECS service running the worker; null with compute = \"lambda\"."
  value       = one(module.worker_service[*].service_name)
}

output "task_definition_arn" {
  description = "ARN of the worker's current task definition revision; null with compute = \"lambda\"."
  value       = one(module.worker_service[*].task_definition_arn)
}

output "task_role_arn" {
  description = "ARN of the worker's task role (its own AWS permissions); null with compute = \"lambda\"."
  value       = one(module.worker_service[*].task_role_arn)
}

output "execution_role_arn" {
  description = "ARN of the task execution role (image pull, logs, secrets); null with compute = \"lambda\"."
  value       = one(module.worker_service[*].execution_role_arn)
}

output "log_group_name" {
  description = "CloudWatch log group of the worker (aws logs tail <name> --follow); null with compute = \"lambda\" (see lambda_log_group_names)."
  value       = one(module.worker_service[*].log_group_name)
}

output "security_group_id" {
  description = "Security group of the worker tasks; null with compute = \"lambda\"."
  value       = one(module.worker_service[*].security_group_id)
}

output "lambda_function_names" {
  description = "Lambda function names, by stage (compute = \"lambda\"; empty with \"ecs\")."
  value       = { for stage, f in module.lambda_stage : stage => f.function_name }
}

output "lambda_function_arns" {
  description = "Lambda function ARNs, by stage (empty with compute = \"ecs\")."
  value       = { for stage, f in module.lambda_stage : stage => f.function_arn }
}

output "lambda_event_source_mapping_uuids" {
  description = "UUIDs of the SQS event source mappings, by stage (disable one to pause a stage; empty with compute = \"ecs\")."
  value       = { for stage, f in module.lambda_stage : stage => f.event_source_mapping_uuid }
}

output "lambda_log_group_names" {
  description = "CloudWatch log groups of the functions, by stage (aws logs tail <name> --follow; empty with compute = \"ecs\")."
  value       = { for stage, f in module.lambda_stage : stage => f.log_group_name }
}

output "lambda_role_arns" {
  description = "Execution role ARNs of the functions, by stage (empty with compute = \"ecs\")."
  value       = { for stage, f in module.lambda_stage : stage => f.role_arn }
}

output "kms_key_arn" {
  description = "Customer-managed KMS key in use, or null when AWS-managed encryption is used."
  value       = local.kms_key_arn
}

output "worker_environment" {
  description = "The non-secret environment the worker container runs with (secrets come from Secrets Manager); null with compute = \"lambda\"."
  value       = one(module.worker_service[*].environment)
}

output "compute" {
  description = "The compute target in use: ecs or lambda."
  value       = var.compute
}

output "prometheus_workspace_id" {
  description = "Amazon Managed Service for Prometheus workspace the worker's metrics are written to; null when prometheus.enabled is false or compute = \"lambda\"."
  value       = local.prometheus_workspace_id
}

output "prometheus_query_url" {
  description = "The workspace's Prometheus-compatible query endpoint (<url>api/v1/query, SigV4-signed; a Grafana data source with SigV4 auth reads it); null when off."
  value       = local.prometheus_endpoint
}

output "prometheus_rule_group_namespaces" {
  description = "Rule-groups namespaces loaded into the workspace, by rule file (deploy/prometheus/rules/*.yml)."
  value       = { for f, ns in aws_prometheus_rule_group_namespace.this : f => ns.name }
}
