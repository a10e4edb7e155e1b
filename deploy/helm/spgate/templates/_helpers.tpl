{{/* Names, labels, the image, the passive range and spgate.toml. */}}

{{- define "spgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name: the release name, with the chart's name unless it holds it. */}}
{{- define "spgate.fullname" -}}
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

{{- define "spgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "spgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "spgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "spgate.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the admin token, and its key. */}}
{{- define "spgate.adminSecret" -}}
{{- .Values.admin.existingSecret | default (printf "%s-admin" (include "spgate.fullname" .)) }}
{{- end }}

{{- define "spgate.adminSecretKey" -}}
{{- if .Values.admin.existingSecret }}{{ .Values.admin.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* ftp.passivePorts ("FIRST-LAST") as a list of two integers. */}}
{{- define "spgate.passiveRange" -}}
{{- $bounds := splitList "-" (toString .Values.ftp.passivePorts) }}
{{- if ne (len $bounds) 2 }}
{{- fail (printf "ftp.passivePorts: %q is not a range like \"50000-50019\"" (toString .Values.ftp.passivePorts)) }}
{{- end }}
{{- $first := atoi (first $bounds) }}
{{- $last := atoi (last $bounds) }}
{{- if or (lt $first 1024) (lt $last $first) (gt $last 65535) }}
{{- fail (printf "ftp.passivePorts: %q: need 1024 <= FIRST <= LAST <= 65535" (toString .Values.ftp.passivePorts)) }}
{{- end }}
{{- list $first $last | toJson }}
{{- end }}

{{/* A values map as TOML `key = value` lines (scalars and lists: JSON is valid TOML there). */}}
{{- define "spgate.tomlKeys" -}}
{{- range $key, $value := . }}
{{- if kindIs "map" $value }}
{{- fail (printf "%s: a table cannot be given as a setting; write it in config" $key) }}
{{- end }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}

{{/* spgate.toml. */}}
{{- define "spgate.config" -}}
# Written by the spgate chart from its values. Every key: config/example.toml.
[state]
# The state volume.
dir = "/var/lib/spgate"
{{- include "spgate.tomlKeys" .Values.state }}

[sftp]
enabled = {{ .Values.sftp.enabled }}
listen = "0.0.0.0:{{ .Values.sftp.port }}"
proxy_protocol = {{ .Values.sftp.proxyProtocol }}
{{- include "spgate.tomlKeys" .Values.sftp.settings }}
{{- if .Values.ftp.enabled }}
{{- $range := include "spgate.passiveRange" . | fromJsonArray }}

[ftp]
listen = "0.0.0.0:{{ .Values.ftp.port }}"
passive_ports = "{{ index $range 0 }}-{{ index $range 1 }}"
{{- with .Values.ftp.passiveHost }}
passive_host = {{ toJson . }}
{{- end }}
{{- if .Values.ftp.tlsSecret }}
tls = { cert = "/run/secrets/spgate-ftp-tls/tls.crt", key = "/run/secrets/spgate-ftp-tls/tls.key" }
{{- end }}
tls_required = {{ toJson .Values.ftp.tlsRequired }}
{{- include "spgate.tomlKeys" .Values.ftp.settings }}
{{- end }}

[admin]
listen = "0.0.0.0:{{ .Values.admin.port }}"
token = "env:SPGATE_ADMIN_TOKEN"
readiness = {{ toJson .Values.admin.readiness }}
{{- with .Values.config }}

{{ . }}
{{- end }}
{{- end }}
