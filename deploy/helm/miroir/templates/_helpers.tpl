{{/* The release's prefix: the release name, or <release>-miroir when it does not name Miroir. */}}
{{- define "miroir.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Besides each component's selector labels (miroir.selector). */}}
{{- define "miroir.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: miroir
{{- end -}}

{{/* Selector labels of one component: include "miroir.selector" (list $ "control-plane") */}}
{{- define "miroir.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "miroir.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "miroir.secretName" -}}
{{- if .Values.secrets.create -}}
{{ include "miroir.fullname" . }}-secrets
{{- else -}}
{{ required "secrets.existingSecret (or secrets.create with the values) is required" .Values.secrets.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "miroir.domain" -}}
{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}

{{- define "miroir.controlPlaneHost" -}}
{{ include "miroir.fullname" . }}-control-plane.{{ include "miroir.domain" . }}
{{- end -}}

{{- define "miroir.meilisearchName" -}}
{{ include "miroir.fullname" . }}-meilisearch
{{- end -}}

{{/* host:port of Meilisearch node <i>: its pod's name under the headless Service. */}}
{{- define "miroir.nodeAddress" -}}
{{- $root := index . 0 -}}
{{ include "miroir.meilisearchName" $root }}-{{ index . 1 }}.{{ include "miroir.meilisearchName" $root }}.{{ include "miroir.domain" $root }}:{{ $root.Values.meilisearch.port }}
{{- end -}}

{{- define "miroir.store" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "miroir.fullname" . }}-redis.{{ include "miroir.domain" . }}:6379/0
{{- else if not .Values.redis.urlFromSecret -}}
{{ required "redis.url (or redis.urlFromSecret) is required with redis.enabled=false" .Values.redis.url }}
{{- end -}}
{{- end -}}

{{/* Every container: no root, no privilege escalation, no capabilities, a read-only root. */}}
{{- define "miroir.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
