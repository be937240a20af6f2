"""`azure` tuner: Azure OpenAI fine-tuning, then serving through deployments.

Training is the `openai` tuner's, through the Azure data plane (the suite's `openai` backend with
`azure_api_version`). Azure serves a fine-tuned model only from a deployment, created through the management REST
API (a bearer token from `token_env`, or azure-identity's DefaultAzureCredential when installed) and billed by the
hour while it exists: each checkpoint is deployed to be scored on dev and deleted after; the chosen one is deployed
for the test cases and deleted when the run ends, whatever happens (errors, Ctrl-C), unless `keep_deployment`.
The hosting time is recorded, and the hourly rate goes into the decision's break-even.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from pydantic import Field

from harness.costs.prices import resolve_price
from harness.errors import ConfigError, HarnessError, redact, remember_secret, require
from harness.records.setup import Deployment
from harness.tuner import Checkpoint
from strategies.finetune.openai_tuner import OpenAITuner, OpenAITunerConfig

log = logging.getLogger(__name__)
API_VERSION = "2024-10-01"


class AzureTunerConfig(OpenAITunerConfig):
    subscription_id: str = Field(description="Azure subscription of the Azure OpenAI resource.")
    resource_group: str
    account: str = Field(description="The Azure OpenAI resource (Cognitive Services account) name.")
    management_url: str = Field("https://management.azure.com", description="Azure Resource Manager endpoint.")
    token_env: str | None = Field(
        None,
        description="Environment variable holding a management bearer token; "
        "default: azure-identity's DefaultAzureCredential.",
    )
    deployment_prefix: str = Field("harness-ft", max_length=40)
    sku: str = Field("standard", description="Deployment SKU, e.g. standard or globalstandard.")
    capacity: int = Field(1, ge=1)
    hosting_usd_per_hour: float | None = Field(None, ge=0, description="Default: the price sheet's azure/<base model>.")
    keep_deployment: bool = Field(
        False, description="Leave the chosen deployment running after the run (billed hourly)."
    )
    deploy_timeout_s: float = Field(3600.0, gt=0)


class AzureTuner(OpenAITuner):
    kind = "azure"
    Config = AzureTunerConfig

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self._deployed: dict[str, float] = {}  # deployment name -> when it was created
        self._hosted_s = 0.0

    def validate(self, examples):
        if not (self.ctx.base_config or {}).get("azure_api_version"):
            raise ConfigError(
                f"the azure tuner needs backend '{self.ctx.base.name}' to be Azure OpenAI. Fix: set "
                "config.azure_api_version (and base_url to the resource endpoint) on that backend."
            )
        return super().validate(examples)

    def hosting_usd_per_hour(self) -> float | None:
        if self.config.hosting_usd_per_hour is not None:
            return self.config.hosting_usd_per_hour
        price = resolve_price(f"azure/{self.ctx.base.model}", None)
        return price.price.hosting_usd_per_hour if price else None

    def hosting(self) -> Deployment:
        rate = self.hosting_usd_per_hour()
        hours = self._hosted_s / 3600
        return Deployment(
            hosted_s=round(self._hosted_s, 3),
            usd_per_hour=rate,
            usd=None if rate is None else round(hours * rate, 6),
            kept=list(self._deployed),
        )

    # ---- the management API ---------------------------------------------------------------------------

    def _token(self) -> str:
        if self.config.token_env:
            value = os.environ.get(self.config.token_env)
            if not value:
                raise ConfigError(
                    f"azure tuner: environment variable {self.config.token_env} is not set. Fix: export "
                    "a management token there (az account get-access-token), or leave token_env out "
                    "to use azure-identity."
                )
            return remember_secret(value)
        identity = require("azure.identity", extra="azure", purpose="the azure tuner's deployments")
        return remember_secret(
            identity.DefaultAzureCredential().get_token(f"{self.config.management_url}/.default").token
        )

    def _url(self, name: str) -> str:
        c = self.config
        return (
            f"{c.management_url.rstrip('/')}/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{c.account}/deployments/{name}?api-version={API_VERSION}"
        )

    def _http(self, method: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        response = httpx.request(
            method, self._url(name), json=body, timeout=60, headers={"Authorization": f"Bearer {self._token()}"}
        )
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise HarnessError(
                f"Azure management API: {method} deployment {name}: HTTP {response.status_code} "
                f"{redact(response.text)[:300]}"
            )  # masked before it is cut
        return (
            response.json()
            if response.content and response.headers.get("content-type", "").startswith("application/json")
            else {}
        )

    def _name(self, checkpoint: Checkpoint) -> str:
        tail = re.sub(r"[^A-Za-z0-9-]", "-", f"{checkpoint.step}-{self.ctx.workdir.name}")[:24]
        return f"{self.config.deployment_prefix}-{tail}"

    def serve(self, checkpoint: Checkpoint) -> str:
        name = self._name(checkpoint)
        if name in self._deployed:
            return name
        body = {
            "sku": {"name": self.config.sku, "capacity": self.config.capacity},
            "properties": {"model": {"format": "OpenAI", "name": checkpoint.model, "version": "1"}},
        }
        self._http("PUT", name, body)
        self._deployed[name] = time.time()  # billed from now: released even if it never becomes ready
        log.info("azure tuner: deploying %s as %s", checkpoint.model, name)
        deadline = time.monotonic() + self.config.deploy_timeout_s
        wait = self.config.poll_s
        while True:
            state = (self._http("GET", name).get("properties") or {}).get("provisioningState")
            if state == "Succeeded":
                return name
            if state in ("Failed", "Canceled") or time.monotonic() > deadline:
                self.release(checkpoint)
                raise HarnessError(f"Azure deployment {name} of {checkpoint.model} ended {state or 'timed out'}.")
            time.sleep(wait)
            wait = min(wait * 2, self.config.poll_max_s)

    def release(self, checkpoint: Checkpoint, *, final: bool = False) -> None:
        name = self._name(checkpoint)
        if name not in self._deployed:
            return
        if final and self.config.keep_deployment:
            log.warning("azure tuner: deployment %s kept (keep_deployment: true); it is billed by the hour", name)
            return
        self._http("DELETE", name)
        self._hosted_s += time.time() - self._deployed.pop(name)
        log.info("azure tuner: deployment %s deleted", name)
