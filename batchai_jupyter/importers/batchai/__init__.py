"""Azure Batch AI material: the 2018-05-01 job.json schema and its storage references."""
