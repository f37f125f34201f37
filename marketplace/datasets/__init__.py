"""Dataset packaging shared by the node and providers: job parameter validation, YOLO
layout checks, safe archive extraction, deterministic streaming zips and a synthetic
dataset generator."""
