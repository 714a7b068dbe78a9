# Data the mocked aws provider returns in the plans of tests/*.tftest.hcl.
# The region matches the runs' var.region (the event bus precondition
# compares them); policy documents are not rendered by a mock, so they
# return an empty but valid policy (tests/iam is where policies are read
# as the real provider renders them).

mock_data "aws_region" {
  defaults = {
    name = "eu-west-1"
  }
}

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition = "aws"
  }
}

mock_data "aws_iam_policy_document" {
  defaults = {
    json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }
}

mock_data "aws_prometheus_workspace" {
  defaults = {
    arn                 = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-12345678-abcd-1234-abcd-123456789012"
    prometheus_endpoint = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-12345678-abcd-1234-abcd-123456789012/"
  }
}

mock_resource "aws_prometheus_workspace" {
  defaults = {
    prometheus_endpoint = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-created/"
  }
}

# The provider validates these ARNs where other resources use them (alarm
# actions, targets), so their mocks are well-formed; every other computed
# value is the mock's own random one, different for every instance.
mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:eu-west-1:123456789012:mock-topic"
  }
}

mock_resource "aws_appautoscaling_policy" {
  defaults = {
    arn = "arn:aws:autoscaling:eu-west-1:123456789012:scalingPolicy:00000000-0000-0000-0000-000000000000:resource/ecs/service/mock/mock:policyName/mock"
  }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:mock-queue"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/mock"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:mock"
  }
}
