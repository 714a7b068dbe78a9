# A runnable root configuration for the CloudCommerce module (deploy/terraform):
# the aws provider, the S3 state backend (backend.tf) and one call of the
# module (ECS Fargate by default, or Lambda with compute = "lambda"). Copy terraform.tfvars.example to terraform.tfvars,
# fill it in, and apply from this directory (see deploy/terraform/README.md,
# "Deployment").

provider "aws" {
  region = var.region

  # The module tags its resources itself (Application, Prefix, var.tags);
  # default_tags here add what this deployment wants on everything else too.
  default_tags {
    tags = var.tags
  }
}

module "cloudcommerce" {
  source = "../.."

  region  = var.region
  prefix  = var.prefix
  compute = var.compute

  # compute = "ecs"
  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  image_tag          = var.image_tag

  # compute = "lambda"
  lambda = { package_path = var.lambda_package_path }

  alarm_subscriptions = var.alarm_subscriptions
  tags                = var.tags
}
