# YOLO training engine (torch, torchvision, Ultralytics, ONNX): the `[train]` extra, which
# the Makefile installs by default (EXTRAS=dev,train); the worker and end-to-end tests then
# train for real on the CPU (DCM_REQUIRE_ENGINES=1 turns a skip into a failure).
export EXTRAS=dev,train
