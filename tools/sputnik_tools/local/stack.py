"""The resource builder: template.yaml's tables, buckets, functions, events and state machines in moto."""

import io
import json
import logging
import os
import threading
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from sputnik_tools.local.moto_patches import patch_moto
from sputnik_tools.local.recording import RecordedRequest, RecordingMotoServer
from sputnik_tools.local.runtime import ACCOUNT, FUNCTIONS, REGION, LocalFunction, stamp_log_records
from sputnik_tools.local_settings import local_environment
from sputnik_tools.template import Route, Template


class LocalStack:
    """template.yaml in moto: tables, buckets, notifications, functions and state machines.

    With `record_requests=True` the moto server logs every request it serves (S3, DynamoDB, ...)
    as (method, path, Range header) in `requests`, e.g. to count what GDAL fetches per tile.
    """

    def __init__(
        self,
        template_path: Path,
        aws_port: int = 5000,
        stack_name: str = "sputnik",
        *,
        record_requests: bool = False,
    ) -> None:
        self.template = Template.load(template_path.resolve(), stack_name)
        self.aws_port = aws_port
        self.endpoint = f"http://127.0.0.1:{aws_port}"
        self.functions: dict[str, LocalFunction] = {}
        self.routes: list[Route] = self.template.routes()
        self.record_requests = record_requests
        self._server: ThreadedMotoServer | None = None
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests recorded so far, in arrival order (empty unless recording)."""
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._requests_lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        """Log one request (called by the moto server's threads)."""
        with self._requests_lock:
            self._requests.append(request)

    def client(self, service: str) -> Any:
        """A boto3 client for the local endpoint."""
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def start(self) -> "LocalStack":
        """Start moto, point this process at it and create every resource of the template."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self.record_requests:
            self._server = RecordingMotoServer(self._record, "127.0.0.1", self.aws_port)
        else:
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.aws_port, verbose=False)
        self._server.start()
        self._environment()
        patch_moto()
        stamp_log_records()
        # Step Functions only executes ASL when asked. Lambda keeps moto's default "Docker" mode so
        # that its invocations reach LambdaFunction.invoke, which patch_moto replaced.
        req = urllib.request.Request(  # noqa: S310 - http to our own loopback endpoint
            f"{self.endpoint}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            method="POST",
        )
        urllib.request.urlopen(req).read()  # noqa: S310 - as above
        self._tables()
        self._buckets()
        self._functions()
        self._notifications()
        self._state_machines()
        self._rules()
        return self

    def stop(self) -> None:
        """Stop the moto server."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        for name in self.functions:
            FUNCTIONS.pop(name, None)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _environment(self) -> None:
        """Give this process what a deployed function finds in its environment, plus the endpoint."""
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                # moto's Step Functions interpreter calls back to this port.
                "MOTO_PORT": str(self.aws_port),
            }
        )
        os.environ.update(local_environment(self.template))
        from sputnik.models import bind_tables
        from sputnik.settings import get_settings

        get_settings.cache_clear()
        bind_tables()

    def _tables(self) -> None:
        """Create DynamoDB tables exactly as the template declares them."""
        ddb = self.client("dynamodb")
        keep = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
        for logical, res in self.template.of_type("AWS::DynamoDB::Table").items():
            props = res["Properties"]
            spec = {k: props[k] for k in keep if k in props}
            ddb.create_table(
                TableName=self.template.physical_name(logical), BillingMode="PAY_PER_REQUEST", **spec
            )

    def _buckets(self) -> None:
        """Create the template's S3 buckets."""
        s3 = self.client("s3")
        for logical in self.template.of_type("AWS::S3::Bucket"):
            s3.create_bucket(Bucket=self.template.physical_name(logical))

    def _functions(self) -> None:
        """Register each function with moto (so ARNs, invoke and events work) and in-process."""
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=f"{self.template.stack_name}-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        glob = (self.template.data.get("Globals") or {}).get("Function") or {}
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("app.py", "# the local stack runs the real code in-process\n")
        lam = self.client("lambda")
        for logical, res in self.template.of_type("AWS::Serverless::Function").items():
            props = res.get("Properties") or {}
            name = self.template.physical_name(logical)
            function = LocalFunction(
                logical,
                name,
                self.template.root / str(props.get("CodeUri", glob.get("CodeUri", "."))),
                str(props.get("Handler", glob.get("Handler", "app.handler"))),
                float(props.get("Timeout", glob.get("Timeout", 3))),
                int(props.get("MemorySize", glob.get("MemorySize", 128))),
            )
            self.functions[name] = FUNCTIONS[name] = function
            lam.create_function(
                FunctionName=name,
                Runtime=str(props.get("Runtime", glob.get("Runtime", "python3.12"))),
                Role=role,
                Handler=function.handler_spec,
                Code={"ZipFile": code.getvalue()},
                Environment={"Variables": self.template.function_environment(logical)},
            )

    def _notifications(self) -> None:
        """Wire S3 and SNS events of functions as the SAM transform would."""
        s3 = self.client("s3")
        sns = self.client("sns")
        per_bucket: dict[str, list[dict[str, Any]]] = {}
        for logical, res in self.template.of_type("AWS::Serverless::Function").items():
            arn = self.template.arn(logical)
            for event in ((res.get("Properties") or {}).get("Events") or {}).values():
                props = self.template.resolve(event.get("Properties") or {})
                if event.get("Type") == "S3":
                    config: dict[str, Any] = {"LambdaFunctionArn": arn, "Events": _as_list(props["Events"])}
                    rules = ((props.get("Filter") or {}).get("S3Key") or {}).get("Rules")
                    if rules:
                        config["Filter"] = {"Key": {"FilterRules": rules}}
                    per_bucket.setdefault(props["Bucket"], []).append(config)
                elif event.get("Type") == "SNS" and props.get("Topic"):
                    sns.subscribe(TopicArn=props["Topic"], Protocol="lambda", Endpoint=arn)
        for bucket, configs in per_bucket.items():
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": configs}
            )

    def subscribe(self, parameter: str, topic_arn: str) -> list[str]:
        """Subscribe as the template does to the topic a parameter names, set to `topic_arn`; the ARNs.

        Each AWS::SNS::Subscription of that topic is made in its Region with its FilterPolicy, which
        moto's SNS applies as SNS does.
        """
        made = []
        for res in self.template.of_type("AWS::SNS::Subscription").values():
            if (res.get("Properties") or {}).get("TopicArn") != {"Ref": parameter}:
                continue
            props = self.template.resolve(res["Properties"], {parameter: topic_arn})
            attributes = (
                {"FilterPolicy": json.dumps(props["FilterPolicy"])} if "FilterPolicy" in props else {}
            )
            if "FilterPolicyScope" in props:
                attributes["FilterPolicyScope"] = props["FilterPolicyScope"]
            sns = boto3.client("sns", endpoint_url=self.endpoint, region_name=props.get("Region", REGION))
            made.append(
                sns.subscribe(
                    TopicArn=props["TopicArn"],
                    Protocol=props["Protocol"],
                    Endpoint=props["Endpoint"],
                    Attributes=attributes,
                    ReturnSubscriptionArn=True,
                )["SubscriptionArn"]
            )
        return made

    def _state_machines(self) -> None:
        """Create state machines from their ASL files with DefinitionSubstitutions applied."""
        sfn = self.client("stepfunctions")
        for logical, res in self.template.of_type("AWS::Serverless::StateMachine").items():
            props = res.get("Properties") or {}
            if "DefinitionUri" in props:
                text = (self.template.root / str(props["DefinitionUri"])).read_text()
            else:
                text = json.dumps(props["Definition"])
            subs = {
                k: str(self.template.resolve(v))
                for k, v in (props.get("DefinitionSubstitutions") or {}).items()
            }
            for key, value in subs.items():
                text = text.replace("${" + key + "}", value)
            sfn.create_state_machine(
                name=self.template.physical_name(logical),
                definition=text,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/{self.template.stack_name}-local",
            )

    def _rules(self) -> None:
        """Create the template's EventBridge rules on the default bus; AWS services' events reach them.

        Step Functions' status changes go through them (moto_patches.patch_execution_events), so
        what reaches a function is what the template's pattern lets through.
        """
        events = self.client("events")
        for logical, res in self.template.of_type("AWS::Events::Rule").items():
            props = self.template.resolve(res.get("Properties") or {})
            name = self.template.physical_name(logical)
            events.put_rule(
                Name=name,
                EventPattern=json.dumps(props["EventPattern"]),
                State=props.get("State", "ENABLED"),
                Description=props.get("Description", ""),
            )
            targets = [{"Id": t["Id"], "Arn": t["Arn"]} for t in props.get("Targets") or []]
            if targets:
                events.put_targets(Rule=name, Targets=targets)

    def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
        """Run a function's handler in-process (what API Gateway's integration does)."""
        return self.functions[function_name].invoke(event)

    def function_for(self, logical_id: str) -> str:
        """The local name of a function from its logical id."""
        return self.template.physical_name(logical_id)


def _as_list(value: Any) -> list[Any]:
    """A scalar or list as a list."""
    return value if isinstance(value, list) else [value]
