#!/usr/bin/env bash
# Put s3a into a Spark distribution: hadoop-aws of exactly the Hadoop version Spark bundles, and the AWS SDK v2
# bundle that this Hadoop release was built against (read from its hadoop-project POM), both checked
# against Maven Central's SHA-1 files.
#
# Usage: fetch-hadoop-aws.sh SPARK_JARS_DIR [MAVEN_REPO]
#        fetch-hadoop-aws.sh --versions SPARK_JARS_DIR POM_FILE   print "hadoop sdk" versions only (tests)
set -euo pipefail

hadoop_version() {  # from the hadoop-client-api jar Spark ships
  local jar
  jar=$(find "$1" -maxdepth 1 -name 'hadoop-client-api-*.jar' -printf '%f\n' | sort | tail -n 1)
  [[ -n $jar ]] || { echo "fetch-hadoop-aws.sh: no hadoop-client-api jar in $1" >&2; return 1; }
  sed -E 's/^hadoop-client-api-(.+)\.jar$/\1/' <<<"$jar"
}

sdk_version() {  # the aws-java-sdk-v2.version property of hadoop-project
  local version
  version=$(sed -n -E 's:.*<aws-java-sdk-v2.version>([^<]+)</aws-java-sdk-v2.version>.*:\1:p' "$1" | head -n 1)
  [[ -n $version ]] || { echo "fetch-hadoop-aws.sh: no aws-java-sdk-v2.version in $1" >&2; return 1; }
  echo "$version"
}

fetch() {  # fetch URL DEST: download and verify against the repository's .sha1
  local url=$1 dest=$2 expected
  curl -fsSL --retry 5 -o "$dest" "$url"
  expected=$(curl -fsSL --retry 5 "$url.sha1" | cut -c1-40)
  echo "$expected  $dest" | sha1sum -c --quiet - || { echo "fetch-hadoop-aws.sh: checksum mismatch for $url" >&2; return 1; }
}

if [[ ${1:-} == --versions ]]; then
  [[ $# -eq 3 ]] || { echo "usage: fetch-hadoop-aws.sh --versions SPARK_JARS_DIR POM_FILE" >&2; exit 2; }
  hadoop=$(hadoop_version "$2")
  sdk=$(sdk_version "$3")
  echo "$hadoop $sdk"
  exit 0
fi

[[ $# -ge 1 && -d $1 ]] || { echo "usage: fetch-hadoop-aws.sh SPARK_JARS_DIR [MAVEN_REPO]" >&2; exit 2; }
jars=$1
maven=${2:-https://repo1.maven.org/maven2}
hadoop=$(hadoop_version "$jars")
pom=$(mktemp)
trap 'rm -f "$pom"' EXIT
fetch "$maven/org/apache/hadoop/hadoop-project/$hadoop/hadoop-project-$hadoop.pom" "$pom"
sdk=$(sdk_version "$pom")
fetch "$maven/org/apache/hadoop/hadoop-aws/$hadoop/hadoop-aws-$hadoop.jar" "$jars/hadoop-aws-$hadoop.jar"
fetch "$maven/software/amazon/awssdk/bundle/$sdk/bundle-$sdk.jar" "$jars/aws-sdk-bundle-$sdk.jar"
echo "fetch-hadoop-aws.sh: added hadoop-aws $hadoop and the AWS SDK bundle $sdk to $jars"
