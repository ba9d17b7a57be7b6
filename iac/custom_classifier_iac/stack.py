"""Long-lived resources: buckets, the manifest queue, MLflow, roles, ECR and SSM parameters.

Context (cdk.json or `-c name=value`):
- `mlflow_uri`: an existing MLflow server; none is created then.
- `training_cpu` / `training_memory_mib`: the Fargate training task's size.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import (
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from custom_classifier_iac.parameters import (
    API_REPOSITORY_URI,
    MANIFEST_QUEUE_ARN,
    SETTING_PARAMETERS,
    TASK_ROLE_ARNS,
)

MANIFEST_SUFFIX = "_train.json"
MLFLOW_PORT = 5000


def _bucket(scope: Construct, name: str, *rules: s3.LifecycleRule) -> s3.Bucket:
    """Encrypted, versioned, private, TLS only; kept when the stack is deleted."""
    return s3.Bucket(
        scope,
        name,
        encryption=s3.BucketEncryption.S3_MANAGED,
        versioned=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90)), *rules],
    )


def _repository(scope: Construct, name: str) -> ecr.Repository:
    return ecr.Repository(
        scope,
        name,
        image_scan_on_push=True,
        encryption=ecr.RepositoryEncryption.AES_256,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[ecr.LifecycleRule(max_image_count=20)],
    )


class CustomClassifierStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        existing_mlflow = self.node.try_get_context("mlflow_uri") or ""

        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=1)
        vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)
        # Lambdas, SageMaker jobs and ECS tasks share this group; MLflow admits only it.
        jobs_sg = ec2.SecurityGroup(self, "JobsSecurityGroup", vpc=vpc,
                                    description="Custom Classifier functions and jobs")  # fmt: skip

        data = _bucket(self, "DataBucket")
        # The web UI uploads documents with presigned PUTs straight from the browser.
        data.add_cors_rule(
            allowed_methods=[s3.HttpMethods.PUT],
            allowed_origins=[self.node.try_get_context("ui_origin") or "*"],
            allowed_headers=["*"],
            max_age=3000,
        )
        # Texts extracted from PDFs and Word files, by content hash: a retrain within the
        # month reads them back; a deleted dataset's texts are gone within it.
        extracted = s3.LifecycleRule(
            prefix="extracted/",
            expiration=Duration.days(30),
            noncurrent_version_expiration=Duration.days(1),
        )
        artifacts = _bucket(self, "ArtifactsBucket", extracted)

        # S3 -> SQS -> the trigger Lambda (template.yaml); five failures park a manifest.
        dead_letters = sqs.Queue(
            self, "ManifestDeadLetters", retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
        )  # fmt: skip
        manifests = sqs.Queue(
            self, "ManifestQueue", visibility_timeout=Duration.seconds(360),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=dead_letters),
        )  # fmt: skip
        data.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(manifests),
            s3.NotificationKeyFilter(suffix=MANIFEST_SUFFIX),
        )

        api_repo = _repository(self, "ApiRepository")
        training_repo = _repository(self, "TrainingRepository")
        training_image = f"{training_repo.repository_uri}:latest"

        # What a training or batch job may touch: read data, write artifacts, pull its image.
        job_role = iam.Role(
            self, "SageMakerExecutionRole",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("sagemaker.amazonaws.com"),
                iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            ),
            description="Custom Classifier training and batch jobs",
        )  # fmt: skip
        data.grant_read(job_role)
        artifacts.grant_read_write(job_role)
        training_repo.grant_pull(job_role)
        job_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                         "logs:DescribeLogStreams"],
                resources=[
                    self.format_arn(service="logs", resource="log-group",
                                    resource_name="/aws/sagemaker/TrainingJobs*",
                                    arn_format=self._colon()),
                    self.format_arn(service="logs", resource="log-group",
                                    resource_name="/custom-classifier/*",
                                    arn_format=self._colon()),
                ],
            )
        )  # fmt: skip
        job_role.add_to_policy(  # SageMaker in a VPC manages the job's network interfaces
            iam.PolicyStatement(
                actions=["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                         "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                         "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
                         "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets",
                         "ec2:DescribeSecurityGroups"],
                resources=["*"],
            )
        )  # fmt: skip

        cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        task = ecs.FargateTaskDefinition(
            self, "TrainingTask",
            cpu=int(self.node.try_get_context("training_cpu") or 4096),
            memory_limit_mib=int(self.node.try_get_context("training_memory_mib") or 16384),
            task_role=job_role,
            ephemeral_storage_gib=50,
        )  # fmt: skip
        training_logs = logs.LogGroup(
            self, "TrainingLogs", retention=logs.RetentionDays.ONE_MONTH,
            log_group_name="/custom-classifier/training",
        )  # fmt: skip
        task.add_container(
            "training",
            image=ecs.ContainerImage.from_ecr_repository(training_repo, "latest"),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="training", log_group=training_logs),
        )

        mlflow_uri = existing_mlflow or self._mlflow(vpc, cluster, artifacts, jobs_sg)

        private = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
        values = {
            "CC_DATA_BUCKET": data.bucket_name,
            "CC_ARTIFACTS_BUCKET": artifacts.bucket_name,
            "CC_MLFLOW_TRACKING_URI": mlflow_uri,
            "CC_TRAINING_IMAGE_URI": training_image,
            "CC_SAGEMAKER_ROLE_ARN": job_role.role_arn,
            "CC_ECS_CLUSTER": cluster.cluster_name,
            "CC_ECS_TASK_DEFINITION": task.task_definition_arn,
        }
        lists = {
            "CC_SAGEMAKER_SUBNETS": private,
            "CC_SAGEMAKER_SECURITY_GROUPS": [jobs_sg.security_group_id],
        }
        for setting, value in values.items():
            ssm.StringParameter(self, f"Param{setting}", parameter_name=SETTING_PARAMETERS[setting],
                                string_value=value)  # fmt: skip
        for setting, items in lists.items():
            ssm.StringListParameter(self, f"Param{setting}",
                                    parameter_name=SETTING_PARAMETERS[setting],
                                    string_list_value=items)  # fmt: skip
        ssm.StringParameter(self, "ParamManifestQueue", parameter_name=MANIFEST_QUEUE_ARN,
                            string_value=manifests.queue_arn)  # fmt: skip
        ssm.StringListParameter(
            self, "ParamTaskRoles", parameter_name=TASK_ROLE_ARNS,
            string_list_value=[job_role.role_arn, task.obtain_execution_role().role_arn],
        )  # fmt: skip
        ssm.StringParameter(self, "ParamApiRepository", parameter_name=API_REPOSITORY_URI,
                            string_value=api_repo.repository_uri)  # fmt: skip

        CfnOutput(self, "DataBucketName", value=data.bucket_name)
        CfnOutput(self, "ArtifactsBucketName", value=artifacts.bucket_name)
        CfnOutput(self, "MlflowTrackingUri", value=mlflow_uri)
        CfnOutput(self, "ApiRepositoryUri", value=api_repo.repository_uri)
        CfnOutput(self, "TrainingRepositoryUri", value=training_repo.repository_uri)

    @staticmethod
    def _colon() -> Any:
        from aws_cdk import ArnFormat

        return ArnFormat.COLON_RESOURCE_NAME

    def _mlflow(
        self, vpc: ec2.Vpc, cluster: ecs.Cluster, artifacts: s3.Bucket, jobs_sg: ec2.SecurityGroup
    ) -> str:
        """MLflow on Fargate behind an internal load balancer, its database on RDS."""
        database = rds.DatabaseInstance(
            self, "MlflowDatabase",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_16),
            instance_type=ec2.InstanceType.of(ec2.InstanceClass.BURSTABLE4_GRAVITON,
                                              ec2.InstanceSize.SMALL),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            credentials=rds.Credentials.from_generated_secret("mlflow"),
            database_name="mlflow",
            storage_encrypted=True,
            backup_retention=Duration.days(7),
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
        )  # fmt: skip
        secret = database.secret
        assert secret is not None
        service = ecs_patterns.ApplicationLoadBalancedFargateService(
            self, "Mlflow",
            cluster=cluster,
            cpu=1024,
            memory_limit_mib=2048,
            desired_count=1,
            min_healthy_percent=100,  # the new task is healthy before the old one stops
            public_load_balancer=False,
            task_image_options=ecs_patterns.ApplicationLoadBalancedTaskImageOptions(
                image=ecs.ContainerImage.from_asset("mlflow"),
                container_port=MLFLOW_PORT,
                environment={"MLFLOW_ARTIFACTS_DESTINATION": f"s3://{artifacts.bucket_name}"},
                secrets={
                    "DB_HOST": ecs.Secret.from_secrets_manager(secret, "host"),
                    "DB_USER": ecs.Secret.from_secrets_manager(secret, "username"),
                    "DB_PASSWORD": ecs.Secret.from_secrets_manager(secret, "password"),
                },
            ),
        )  # fmt: skip
        service.target_group.configure_health_check(path="/health")
        artifacts.grant_read_write(service.task_definition.task_role)
        database.connections.allow_default_port_from(service.service)
        service.load_balancer.connections.allow_from(jobs_sg, ec2.Port.tcp(80))
        return f"http://{service.load_balancer.load_balancer_dns_name}"
