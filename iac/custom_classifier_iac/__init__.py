"""The CDK app's constructs: Custom Classifier's long-lived AWS resources."""
