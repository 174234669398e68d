"""Processing: the task registry, proc records and the Step Functions stages of each task."""
