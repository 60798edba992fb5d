terraform {
  required_version = ">= 1.9.0" # validations that read other variables (project-vars.tf)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.40" # logging_config (JSON logs) and scaling_config need >= 5.40
    }
  }

  # Partial configuration: bucket, key, region, locking and encryption come from
  #   terraform -chdir=infra init -backend-config=../config/<backend>.tfvars
  # (see config/example-backend.tfvars and infra/README.md).
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(
      {
        Project    = "solace"
        Deployment = var.name_prefix == "" ? "default" : trimsuffix(var.name_prefix, "-")
        ManagedBy  = "terraform"
      },
      var.tags,
    )
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
