# The runnable root, planned and applied against a mocked aws provider with
# the settings of terraform.tfvars.example: it passes its inputs through to
# the module for both compute targets.

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  region              = "eu-west-1"
  prefix              = "shop"
  vpc_id              = "vpc-0123456789abcdef0"
  private_subnet_ids  = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  image_tag           = "v1.0.0"
  alarm_subscriptions = [{ name = "oncall", protocol = "email", endpoint = "oncall@example.com" }]
  tags                = { Environment = "production" }
}

run "ecs_from_the_example_settings" {
  assert {
    condition     = output.event_bus_name == "shop" && output.ecs_cluster_name == "shop" && output.ecs_service_name == "shop-worker"
    error_message = "The example's prefix names the bus, the cluster and the service."
  }
  assert {
    condition     = output.log_group_name == "/ecs/shop/worker" && output.lambda_function_names == {}
    error_message = "compute defaults to ecs: a worker log group and no functions."
  }
}

run "lambda_from_the_example_settings" {
  variables {
    compute             = "lambda"
    vpc_id              = null
    private_subnet_ids  = null
    image_tag           = null
    lambda_package_path = "../../tests/testdata/lambda.zip"
  }

  assert {
    condition     = toset(keys(output.lambda_function_names)) == toset([for q in jsondecode(file("../../../topology.json")).queues : q.stage]) && output.ecs_cluster_name == null
    error_message = "compute = \"lambda\" gives one function per stage and no cluster."
  }
}
