# Tools of the document handlers (seed 004's pdf/session jobs, worker/executors/documents):
# Tesseract with its English data (OCR) and poppler's pdftoppm (page images).
# Sourced under `set -euo pipefail`; idempotent.
if ! command -v tesseract >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1 \
  || ! tesseract --list-langs 2>/dev/null | grep -qx eng; then
  apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng poppler-utils \
    || { apt-get update && apt-get install -y --no-install-recommends \
      tesseract-ocr tesseract-ocr-eng poppler-utils; }
fi
