from django.urls import path

from . import api
from .gateway import views as gateway

urlpatterns = [
    path("v1/chat/completions", gateway.chat_completions, name="gateway-chat"),
    path("v1/embeddings", gateway.embeddings, name="gateway-embeddings"),
    path("v1/images/generations", gateway.images_generations, name="gateway-images"),
    path("v1/audio/speech", gateway.audio_speech, name="gateway-speech"),
    path("v1/audio/transcriptions", gateway.audio_transcriptions, name="gateway-transcriptions"),
    path("v1/models", gateway.models, name="gateway-models"),
    path("v1/models/<path:model>", gateway.model_detail, name="gateway-model"),
    path("v1/messages", gateway.messages, name="gateway-messages"),
    path("v1/messages/count_tokens", gateway.messages_count_tokens, name="gateway-messages-count-tokens"),
    path("v1/responses", gateway.responses, name="gateway-responses"),
    path("api/execute", gateway.execute, name="gateway-execute"),
    path("api/providers", api.providers_list, name="providers-list"),
    path("api/providers/<str:name>", api.provider_detail, name="providers-detail"),
    path("api/providers/<str:name>/models", api.provider_models, name="providers-models"),
    path("api/providers/<str:name>/models/<path:model>/pull", api.provider_model_pull, name="providers-pull"),
    path("api/breakers", api.breakers_list, name="providers-breakers"),
    path("api/breakers/<str:name>/reset", api.breaker_reset, name="providers-breaker-reset"),
    path("api/breakers/<str:name>/force-open", api.breaker_force_open, name="providers-breaker-force-open"),
    path("api/config", api.config, name="providers-config"),
    path("api/cache", api.cache_delete, name="providers-cache"),
    path("api/schema", api.schema, name="providers-schema"),
]
