"""Dataset packaging shared by the node and providers: job parameter validation, the YOLO
dataset layout (detected at upload, stored with the job, read by providers), safe archive
extraction, deterministic streaming zips and a synthetic dataset generator."""
