"""Azure ML v1's `azureml` package as batchai_jupyter offers it inside jobs (see compat/)."""
