{{/* Names, labels and the pod spec every Airflow component shares. */}}

{{- define "seedcoder.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "seedcoder.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: seedcoder
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "scheduler"). */}}
{{- define "seedcoder.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: (dict "root" $ "image" .Values.images.spark). */}}
{{- define "seedcoder.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "seedcoder.stagesNamespace" -}}
{{- .Values.stages.namespace | default .Release.Namespace -}}
{{- end -}}

{{- define "seedcoder.airflowServiceAccount" -}}
{{- printf "%s-airflow" (include "seedcoder.fullname" .) -}}
{{- end -}}

{{- define "seedcoder.configMap" -}}
{{- printf "%s-config" (include "seedcoder.fullname" .) -}}
{{- end -}}

{{- define "seedcoder.oracleName" -}}
{{- printf "%s-oracle" (include "seedcoder.fullname" .) -}}
{{- end -}}

{{- define "seedcoder.sandboxName" -}}
{{- printf "%s-sandbox" (include "seedcoder.fullname" .) -}}
{{- end -}}

{{- define "seedcoder.apiServerUrl" -}}
{{- printf "http://%s-api-server.%s.svc:%d" (include "seedcoder.fullname" .) .Release.Namespace (int .Values.airflow.apiServer.port) -}}
{{- end -}}

{{/* The platform configuration: the platformConfig value, else the chart's copy of config/k8s.yaml. */}}
{{- define "seedcoder.platformConfig" -}}
{{- $config := .Values.platformConfig | default (.Files.Get "files/k8s.yaml") -}}
{{- required "platformConfig is empty and the chart has no files/k8s.yaml (a link to config/k8s.yaml)" $config -}}
{{- end -}}

{{/* Environment of every Airflow container: metadata database, secrets, and the stage launcher's settings. */}}
{{- define "seedcoder.airflowEnv" -}}
{{- $fullname := include "seedcoder.fullname" . -}}
{{- $secret := required "airflow.existingSecret is required: the name of a Secret with the keys fernet-key, jwt-secret and api-secret-key" .Values.airflow.existingSecret -}}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  valueFrom:
    secretKeyRef:
      name: {{ required "airflow.database.existingSecret is required: the name of a Secret holding the SQLAlchemy URL of Airflow's PostgreSQL database" .Values.airflow.database.existingSecret }}
      key: {{ .Values.airflow.database.key }}
- name: AIRFLOW__CORE__FERNET_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: fernet-key}
- name: AIRFLOW__API_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: jwt-secret}
- name: AIRFLOW__API__SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: api-secret-key}
- name: AIRFLOW__CORE__EXECUTOR
  value: LocalExecutor
- name: AIRFLOW__CORE__EXECUTION_API_SERVER_URL
  value: {{ printf "%s/execution/" (include "seedcoder.apiServerUrl" .) | quote }}
- name: AIRFLOW__CORE__DAGS_FOLDER
  value: /opt/seedcoder/dags
- name: AIRFLOW__CORE__PLUGINS_FOLDER
  value: /opt/seedcoder/plugins
- name: AIRFLOW__CORE__LOAD_EXAMPLES
  value: "False"
- name: {{ printf "AIRFLOW_CONN_%s" (upper .Values.stages.spark.connId) }}
  value: {{ dict "conn_type" "spark" "host" (printf "k8s://%s" .Values.stages.spark.apiServer) "port" (int .Values.stages.spark.apiServerPort) "extra" (dict "deploy-mode" "cluster" "namespace" (include "seedcoder.stagesNamespace" .)) | toJson | quote }}
- name: SEEDCODER_PROFILE
  value: k8s
- name: SEEDCODER_CONFIG
  value: /etc/seedcoder/k8s.yaml
- name: SEEDCODER_NAMESPACE
  value: {{ include "seedcoder.stagesNamespace" . | quote }}
- name: SEEDCODER_SERVICE_ACCOUNT
  value: {{ .Values.stages.serviceAccount.name | quote }}
- name: SEEDCODER_GPU_POOL
  value: {{ .Values.stages.gpuPool.name | quote }}
- name: SEEDCODER_SPARK_CONN_ID
  value: {{ .Values.stages.spark.connId | quote }}
- name: SEEDCODER_SPARK_MAX_EXECUTORS
  value: {{ .Values.stages.spark.maxExecutors | quote }}
- name: SEEDCODER_SPARK_IMAGE
  value: {{ include "seedcoder.image" (dict "root" . "image" .Values.images.spark) | quote }}
- name: SEEDCODER_GPU_IMAGE
  value: {{ include "seedcoder.image" (dict "root" . "image" .Values.images.gpu) | quote }}
- name: SEEDCODER_CONFIG_MAP
  value: {{ include "seedcoder.configMap" . | quote }}
- name: SEEDCODER_SPARK_POD_TEMPLATE
  value: /etc/seedcoder/spark-pod-template.yaml
- name: SEEDCODER_GITHUB_SECRET
  value: {{ required "stages.github.existingSecret is required: the name of a Secret with the key GITHUB_TOKEN (the crawl's GitHub API token)" .Values.stages.github.existingSecret | quote }}
{{- with .Values.stages.models.existingClaim }}
- name: SEEDCODER_MODELS_CLAIM
  value: {{ . | quote }}
{{- end }}
{{- with .Values.stages.evalSets.existingClaim }}
- name: SEEDCODER_EVAL_SETS_CLAIM
  value: {{ . | quote }}
{{- end }}
{{- if .Values.oracle.enabled }}
- name: SEEDCODER_ORACLE_ENDPOINT
  value: {{ printf "http://%s.%s.svc:%d/v1" (include "seedcoder.oracleName" .) (include "seedcoder.stagesNamespace" .) (int .Values.oracle.port) | quote }}
- name: SEEDCODER_ORACLE_MODEL
  value: {{ .Values.oracle.servedModelName | quote }}
{{- end }}
{{- if .Values.sandbox.enabled }}
- name: SEEDCODER_SANDBOX_URL
  value: {{ printf "http://%s.%s.svc:%d" (include "seedcoder.sandboxName" .) (include "seedcoder.stagesNamespace" .) (int .Values.sandbox.port) | quote }}
{{- end }}
{{- with .Values.oracle.apiKeySecret }}
- name: SEEDCODER_ORACLE_SECRET
  value: {{ . | quote }}
{{- end }}
- name: SEEDCODER_LAKE_ROOT
  value: {{ .Values.lake.root | quote }}
- name: SEEDCODER_S3_ENDPOINT
  value: {{ .Values.lake.s3Endpoint | quote }}
- name: AWS_REGION
  value: {{ .Values.lake.region | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.lake.region | quote }}
{{- with .Values.lake.credentialsSecret }}
- name: SEEDCODER_S3_SECRET
  value: {{ . | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: AWS_ACCESS_KEY_ID}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: AWS_SECRET_ACCESS_KEY}
{{- end }}
{{- with .Values.airflow.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The pod spec of an Airflow component: (dict "root" $ "component" "scheduler" "args" (list ...) "probe" ...).
Every component waits for the schema migration of the init job, runs as the image's non-root user with a
read-only root filesystem, and mounts the platform configuration.
*/}}
{{- define "seedcoder.airflowPodSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "seedcoder.airflowServiceAccount" $root }}
securityContext:
  runAsNonRoot: true
  runAsUser: 50000
  runAsGroup: 0
  fsGroup: 0
  seccompProfile: {type: RuntimeDefault}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with $root.Values.airflow.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.airflow.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- if .waitForMigrations }}
initContainers:
  - name: wait-for-migrations
    image: {{ include "seedcoder.image" (dict "root" $root "image" $root.Values.images.airflow) }}
    imagePullPolicy: {{ $root.Values.images.airflow.pullPolicy }}
    args: ["airflow", "db", "check-migrations", "--migration-wait-timeout", "600"]
    env:
{{- include "seedcoder.airflowEnv" $root | nindent 6 }}
    securityContext: {{ include "seedcoder.containerSecurity" . }}
    volumeMounts:
{{- include "seedcoder.airflowMounts" . | nindent 6 }}
{{- end }}
containers:
  - name: {{ .component }}
    image: {{ include "seedcoder.image" (dict "root" $root "image" $root.Values.images.airflow) }}
    imagePullPolicy: {{ $root.Values.images.airflow.pullPolicy }}
    args:
{{- toYaml .args | nindent 6 }}
    env:
{{- include "seedcoder.airflowEnv" $root | nindent 6 }}
{{- with .ports }}
    ports:
{{- toYaml . | nindent 6 }}
{{- end }}
{{- with .probe }}
    livenessProbe:
{{- toYaml . | nindent 6 }}
{{- end }}
{{- with .readiness }}
    readinessProbe:
{{- toYaml . | nindent 6 }}
{{- end }}
    resources:
{{- toYaml .resources | nindent 6 }}
    securityContext: {{ include "seedcoder.containerSecurity" . }}
    volumeMounts:
{{- include "seedcoder.airflowMounts" . | nindent 6 }}
volumes:
  - name: platform-config
    configMap:
      name: {{ include "seedcoder.configMap" $root }}
  - name: airflow-home
    emptyDir: {}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "seedcoder.containerSecurity" -}}
{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
{{- end -}}

{{- define "seedcoder.airflowMounts" -}}
- name: platform-config
  mountPath: /etc/seedcoder
  readOnly: true
- name: airflow-home
  mountPath: /opt/airflow
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* `airflow jobs check` for one job type: the liveness probe of scheduler, dag-processor and triggerer. */}}
{{- define "seedcoder.jobsCheckProbe" -}}
exec:
  command: ["airflow", "jobs", "check", "--job-type", {{ . | quote }}, "--local"]
initialDelaySeconds: 60
periodSeconds: 60
timeoutSeconds: 30
failureThreshold: 5
{{- end -}}
