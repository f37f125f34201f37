# Command-line tools some tests drive as a user would: curl (the seeds' examples), unzip
# (a second reader of the dataset zips) and zip (a second writer of uploaded ones).
for tool in curl unzip zip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "$tool"
  fi
done
