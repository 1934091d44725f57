"""Models: the multi-task ESPnet2 model and task, training recipes, export and evaluation."""
