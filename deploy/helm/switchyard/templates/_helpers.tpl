{{/* The release's name for its objects (63 characters at most). */}}
{{- define "switchyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchyard.labels" -}}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The state: policy file for sharedState bundled or external. */}}
{{- define "switchyard.statePolicy" -}}
{{- $state := merge (dict "backend" "redis" "url_env" "REDIS_URL") (deepCopy .Values.sharedState.settings) -}}
{{- if and (eq .Values.sharedState.mode "external") .Values.sharedState.external.caSecret -}}
{{- $_ := set $state "tls" (dict "ca_file" "/etc/switchyard/redis-tls/ca.crt") -}}
{{- end -}}
# Limits, budgets and the response cache shared by every replica.
{{ dict "state" $state | toYaml }}
{{- end -}}
