{{- define "gitlab-agent.fullname" -}}
{{- printf "%s-gitlab-agent" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gitlab-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gitlab-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gitlab-agent.secretName" -}}
{{- default (printf "%s-token" (include "gitlab-agent.fullname" .)) .Values.config.secretName -}}
{{- end -}}
