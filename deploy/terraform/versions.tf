terraform {
  # 1.9 is the first release whose variable validations may refer to other
  # variables and locals (max_tasks >= min_tasks, the Stripe secret when the
  # gateway is "stripe", the handler deadline below the visibility timeout).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x has everything used here (customized_metric_specification with
      # metric math, SQS redrive allow policies, the ECS deployment circuit
      # breaker). Move to 6.x deliberately, after reading its upgrade guide.
      version = "~> 5.90"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Application = "cloudcommerce"
      Prefix      = var.prefix
    })
  }
}
