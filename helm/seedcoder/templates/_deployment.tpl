{{/*
A Deployment of one Airflow component: (dict "root" $ "component" "scheduler" "values" .Values.airflow.scheduler
"args" (list ...) and optional "probe", "readiness", "ports").
*/}}
{{- define "seedcoder.airflowDeployment" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ printf "%s-%s" (include "seedcoder.fullname" $root) .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
{{- include "seedcoder.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
{{- include "seedcoder.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
{{- include "seedcoder.selectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
        app.kubernetes.io/part-of: seedcoder
      annotations:
        # Roll the pods when the platform configuration changes.
        checksum/config: {{ include "seedcoder.platformConfig" $root | sha256sum }}
    spec:
{{- include "seedcoder.airflowPodSpec" (merge (dict "resources" .values.resources "waitForMigrations" true) .) | nindent 6 }}
{{- end -}}
