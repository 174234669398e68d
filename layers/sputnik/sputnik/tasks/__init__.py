"""Processing: the task catalogue, proc records and the Step Functions stages of each task."""
