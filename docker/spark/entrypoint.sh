#!/usr/bin/env bash
# The Spark image's entrypoint: the container contract of Spark on Kubernetes.
#
# Spark's Kubernetes scheduler starts pods of this image with one of three argument lists:
#   driver ARGS...    the driver pod: spark-submit in client mode inside the pod, bound to the pod's address
#                     (SPARK_DRIVER_BIND_ADDRESS); ARGS are Spark's own (--properties-file ... --class ... APP ...)
#   executor          an executor pod: KubernetesExecutorBackend, configured by the SPARK_EXECUTOR_* /
#                     SPARK_DRIVER_URL / SPARK_APPLICATION_ID / SPARK_RESOURCE_PROFILE_ID variables Spark sets
#   anything else     run as given (the python-runtime stage pods: `python -m MODULE ...`)
# SPARK_HOME is the pyspark distribution of requirements/platform.lock, so JVM and Python sides match.
set -euo pipefail

: "${SPARK_HOME:?SPARK_HOME is not set}"
classpath="${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}${SPARK_CONF_DIR:-$SPARK_HOME/conf}:$SPARK_HOME/jars/*"
[[ -n ${SPARK_EXTRA_CLASSPATH:-} ]] && classpath="$classpath:$SPARK_EXTRA_CLASSPATH"
[[ -n ${HADOOP_CONF_DIR:-} ]] && classpath="$HADOOP_CONF_DIR:$classpath"
classpath="$classpath:$PWD"  # the working directory, where Spark puts files shipped with --files
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-python3} PYSPARK_DRIVER_PYTHON=${PYSPARK_DRIVER_PYTHON:-python3}

case "${1:-}" in
  driver)
    shift
    : "${SPARK_DRIVER_BIND_ADDRESS:?the driver pod needs SPARK_DRIVER_BIND_ADDRESS (Spark sets it to the pod IP)}"
    exec /usr/bin/tini -s -- "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    java_opts=()
    for name in "${!SPARK_JAVA_OPT_@}"; do  # SPARK_JAVA_OPT_0, _1, ...: one JVM option each
      java_opts+=("${!name}")
    done
    exec /usr/bin/tini -s -- java "${java_opts[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY:?}" -Xmx"$SPARK_EXECUTOR_MEMORY" -cp "$classpath" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL:?}" --executor-id "${SPARK_EXECUTOR_ID:?}" \
      --cores "${SPARK_EXECUTOR_CORES:?}" --app-id "${SPARK_APPLICATION_ID:?}" \
      --hostname "${SPARK_EXECUTOR_POD_IP:?}" --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
      --podName "${SPARK_EXECUTOR_POD_NAME:-$HOSTNAME}" "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
