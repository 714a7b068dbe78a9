output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "service_name" {
  description = "Name of the ECS service running the worker."
  value       = aws_ecs_service.this.name
}

output "task_definition_arn" {
  description = "ARN (with revision) of the worker's task definition."
  value       = aws_ecs_task_definition.this.arn
}

output "stop_timeout_seconds" {
  description = "The container's stopTimeout: the worker's shutdown budget plus the margin."
  value       = local.stop_timeout_seconds
}

output "task_role_arn" {
  description = "ARN of the task role (the worker's own AWS permissions)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the task execution role (image pull, logs, secrets)."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the worker."
  value       = aws_cloudwatch_log_group.this.name
}

output "security_group_id" {
  description = "Security group of the worker tasks (add it to VPC endpoint or load balancer rules)."
  value       = aws_security_group.this.id
}

output "environment" {
  description = "The plain (non-secret) environment the worker container gets."
  value       = local.environment
}
