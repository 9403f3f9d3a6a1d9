#!/usr/bin/env bash
# Fail the Spark image's build (not a stage, later, at run time) when s3a cannot work: the hadoop-aws jar of
# exactly the Hadoop version Spark bundles and an AWS SDK v2 bundle must be in SPARK_JARS_DIR, and the JVM must
# load S3AFileSystem and the SDK's S3 client from that class path (Hadoop's own FindClass tool does the loading).
#
# Usage: check-s3a.sh SPARK_JARS_DIR
set -euo pipefail

[[ $# -eq 1 && -d $1 ]] || { echo "usage: check-s3a.sh SPARK_JARS_DIR" >&2; exit 2; }
jars=$1
fail() { echo "check-s3a.sh: $* (the lake on S3 needs s3a; see docker/README.md)" >&2; exit 1; }

api=$(find "$jars" -maxdepth 1 -name 'hadoop-client-api-*.jar' -printf '%f\n' | sort | tail -n 1)
[[ -n $api ]] || fail "no hadoop-client-api jar in $jars: is this a Spark distribution?"
hadoop=${api#hadoop-client-api-}
hadoop=${hadoop%.jar}
[[ -f $jars/hadoop-aws-$hadoop.jar ]] || fail "hadoop-aws-$hadoop.jar is missing from $jars (Spark bundles Hadoop $hadoop)"
compgen -G "$jars/aws-sdk-bundle-*.jar" >/dev/null || fail "the AWS SDK v2 bundle (aws-sdk-bundle-*.jar) is missing from $jars"
for class in org.apache.hadoop.fs.s3a.S3AFileSystem software.amazon.awssdk.services.s3.S3Client; do
  java -cp "$jars/*" org.apache.hadoop.util.FindClass load "$class" >/dev/null 2>&1 \
    || fail "the JVM cannot load $class from $jars"
done
echo "check-s3a.sh: s3a is ready (hadoop-aws $hadoop)"
