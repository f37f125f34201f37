# YOLO training engine (torch, torchvision, Ultralytics, ONNX): the `[train]` extra. The
# Makefile's install target passes $(EXTRAS) to pip, so asking for it here is enough; the
# worker tests then train for real on the CPU (DCM_REQUIRE_ENGINES=1 turns a skip into a failure).
export EXTRAS=dev,train
# A venv left from an earlier run without the extra: drop its install stamp so `make` reinstalls.
if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import ultralytics, onnxruntime" 2>/dev/null; then
  rm -f .venv/bin/dcm
fi
