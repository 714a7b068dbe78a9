variable "region" {
  description = "AWS region to deploy into, e.g. eu-west-1 (the provider's region and the module's)."
  type        = string
}

variable "prefix" {
  description = "Resource prefix (the worker's CLOUDCOMMERCE_PREFIX); see the module's variable of the same name for the allowed form."
  type        = string
  default     = "cloudcommerce"
}

variable "compute" {
  description = "Where the stage handlers run: \"ecs\" (the worker on ECS Fargate, the default) or \"lambda\" (one function per stage, needs lambda_package_path instead of the VPC, subnets and image)."
  type        = string
  default     = "ecs"
}

variable "vpc_id" {
  description = "ID of the VPC holding private_subnet_ids, e.g. vpc-0123456789abcdef0; required with compute = \"ecs\"."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Private subnets for the worker tasks, ideally one per availability zone, with a route to the AWS APIs (NAT gateway or VPC endpoints); required with compute = \"ecs\"."
  type        = list(string)
  default     = null
}

variable "image_tag" {
  description = "Tag of the worker image pushed to the module's ECR repository (output ecr_repository_url); a version or git SHA, never latest; required with compute = \"ecs\"."
  type        = string
  default     = null
}

variable "lambda_package_path" {
  description = "Path of the zip holding cmd/lambda's bootstrap binary, relative to this directory (e.g. ../../../../bin/lambda.zip); required with compute = \"lambda\"."
  type        = string
  default     = null
}

variable "alarm_subscriptions" {
  description = "Who receives the operational alarms: a list of { name, protocol (email, sms or https), endpoint }."
  type = list(object({
    name     = string
    protocol = string
    endpoint = string
  }))
  default = []
}

variable "tags" {
  description = "Tags for every resource of this deployment (e.g. Environment, Owner)."
  type        = map(string)
  default     = {}
}
