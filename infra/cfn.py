"""Small builders for CloudFormation values, so every ARN is written one way."""

from __future__ import annotations

from typing import Any

__all__ = ["sub", "ref", "get_att", "arn", "policy_document", "statement", "log_group"]


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def ref(resource: str) -> dict[str, str]:
    return {"Ref": resource}


def get_att(resource: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [resource, attribute]}


def arn(service: str, resource: str) -> dict[str, str]:
    """An ARN in the stack's own partition, region and account (aws-cn in China)."""
    return sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def statement(sid: str, actions: list[str], resources: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def policy_document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def log_group(name: str, retention_days: int) -> dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": name, "RetentionInDays": retention_days}}
