output "ecr_repository_url" {
  description = "Where to push the worker image: docker push <url>:<image_tag>."
  value       = module.cloudcommerce.ecr_repository_url
}

output "event_bus_name" {
  description = "EventBridge bus producers put OrderPlaced events on."
  value       = module.cloudcommerce.event_bus_name
}

output "producer_policy_arn" {
  description = "IAM policy to attach to every producer's role."
  value       = module.cloudcommerce.producer_policy_arn
}

output "alarms_topic_arn" {
  description = "SNS topic of the operational alarms (CloudWatch and Prometheus alerts)."
  value       = module.cloudcommerce.alarms_topic_arn
}

output "ecs_cluster_name" {
  description = "ECS cluster running the worker."
  value       = module.cloudcommerce.ecs_cluster_name
}

output "ecs_service_name" {
  description = "ECS service of the worker (aws ecs update-service --force-new-deployment)."
  value       = module.cloudcommerce.ecs_service_name
}

output "log_group_name" {
  description = "CloudWatch log group of the worker (aws logs tail <name> --follow)."
  value       = module.cloudcommerce.log_group_name
}

output "lambda_function_names" {
  description = "Lambda function names, by stage (compute = \"lambda\"; empty with \"ecs\")."
  value       = module.cloudcommerce.lambda_function_names
}
