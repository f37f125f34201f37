# Command-line tools some tests drive as a user would: curl (the seeds' examples) and unzip
# (a second reader of the dataset zips).
for tool in curl unzip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "$tool"
  fi
done
