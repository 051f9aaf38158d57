{{/* Name of the chart, overridable. */}}
{{- define "banter-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (release-based unless overridden). */}}
{{- define "banter-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "banter-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "banter-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "banter-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object of the chart. */}}
{{- define "banter-operator.labels" -}}
helm.sh/chart: {{ include "banter-operator.chart" . }}
{{ include "banter-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: banterpacks
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "banter-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "banter-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "banter-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The single RBAC source, files/rbac-rules.yaml, parsed. */}}
{{- define "banter-operator.rbacRules" -}}
{{- .Files.Get "files/rbac-rules.yaml" }}
{{- end }}
