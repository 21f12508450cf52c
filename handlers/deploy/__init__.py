"""Deployment as code: the AWS stack (a CloudFormation template generated from ``handlers.dispatch._resources``,
deployed with change sets), the Lambda package, and the RunPod template + endpoint (management REST API).

Used by ``comfy-relay deploy``; never imported by the Lambdas or the worker. The machinery lives in private
modules: ``_template`` (pure), ``_stack`` (change sets), ``_aws``, ``_package``, ``_runpod``.
"""

from __future__ import annotations

__all__: list[str] = []
