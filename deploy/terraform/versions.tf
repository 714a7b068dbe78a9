# A child module: no provider or backend configuration here. The caller (see
# examples/complete) configures the aws provider and the state backend.
terraform {
  # 1.9 is the first release whose variable validations may refer to other
  # variables and locals (max_tasks >= min_tasks, the Stripe secret when the
  # gateway is "stripe", the handler deadline below the visibility timeout).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100 is the release whose schema testdata/aws-provider-schema.json
      # holds (the schema test checks every aws_* block against it). 5.x has
      # everything used here (customized_metric_specification with metric
      # math, SQS redrive allow policies, the ECS deployment circuit breaker,
      # Amazon Managed Service for Prometheus). Move to 6.x deliberately,
      # after reading its upgrade guide.
      version = "~> 5.100"
    }
  }
}
