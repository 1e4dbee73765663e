{{/* Chart name, truncated to the 63 characters Kubernetes allows in names and labels. */}}
{{- define "dmc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dmc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by every object of this chart. */}}
{{- define "dmc.labels" -}}
helm.sh/chart: {{ include "dmc.chart" . }}
app.kubernetes.io/name: {{ include "dmc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dagster-model-compression
{{- end -}}

{{/* "repository:tag", or "" when the repository is empty. */}}
{{- define "dmc.image" -}}
{{- if .repository -}}
{{- printf "%s:%s" .repository (required "an image with a repository needs a tag" .tag) -}}
{{- end -}}
{{- end -}}

{{/* Artifact store root: the PVC folder, or the S3 URL. */}}
{{- define "dmc.artifactRoot" -}}
{{- if eq .Values.artifactStore.kind "s3" -}}
{{- required "artifactStore.s3.root (s3://bucket/prefix) is required when artifactStore.kind is s3" .Values.artifactStore.s3.root -}}
{{- else if eq .Values.artifactStore.kind "pvc" -}}
{{- printf "%s/artifacts" (trimSuffix "/" .Values.modelsPvc.mountPath) -}}
{{- else -}}
{{- fail (printf "artifactStore.kind must be pvc or s3, got %q" .Values.artifactStore.kind) -}}
{{- end -}}
{{- end -}}
