"""The admin's notification channels (URL masked, a test button), their deliveries, and the
Telegram chats the operators' bot answers."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from trading.models import NotificationChannel, NotificationDelivery, TelegramChat
from trading.notifications import transport
from trading.notifications.kinds import Kind, Severity
from trading.notifications.services import send_test


class ChannelForm(forms.ModelForm):
    """The URL is write-only: an existing channel's is never rendered back, only masked."""

    url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"size": 80}),
        help_text="An apprise URL (json://, tgram://, mailtos://, slack://...). On an existing "
        "channel, leave blank to keep the current one.",
    )
    kinds = forms.MultipleChoiceField(
        choices=Kind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every kind.",
    )
    min_severity = forms.ChoiceField(choices=[(s.value, s.value) for s in Severity])

    class Meta:
        model = NotificationChannel
        fields = ["name", "url", "kinds", "min_severity", "enabled"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url:
            if self.instance.pk is None:
                raise forms.ValidationError("A new channel needs a URL.")
            return self.instance.url
        if not transport.is_valid_url(url):
            raise forms.ValidationError(
                f"apprise does not know this URL: {transport.masked_url(url)}"
            )
        return url


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "masked_url", "subscribed", "min_severity", "enabled", "last_sent"]
    readonly_fields = ["masked_url"]
    actions = ["send_test_message"]

    def get_fields(self, request, obj=None) -> list[str]:
        if obj is not None and not self.has_change_permission(request, obj):
            # A read-only page would show every field's value as it is: the URL only masked.
            return ["name", "masked_url", "subscribed", "min_severity", "enabled"]
        fields = ["name", "url", "kinds", "min_severity", "enabled"]
        return [*fields[:1], "masked_url", *fields[1:]] if obj else fields

    @admin.display(description="URL")
    def masked_url(self, obj: NotificationChannel) -> str:
        return transport.masked_url(obj.url) if obj.url else ""

    @admin.display(description="kinds")
    def subscribed(self, obj: NotificationChannel) -> str:
        return ", ".join(obj.kinds) if obj.kinds else "every kind"

    @admin.display(description="last sent")
    def last_sent(self, obj: NotificationChannel):
        last = obj.deliveries.first()
        return last.sent_at if last else None

    @admin.action(description="Send a test message", permissions=["change"])
    def send_test_message(self, request, queryset) -> None:
        for channel in queryset:
            delivery = send_test(channel, request.user.get_username())
            if delivery.ok:
                self.message_user(request, f"Test sent to {channel}.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"Test to {channel} failed: {delivery.error}", messages.ERROR
                )


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["sent_at", "channel", "kind", "title", "notices", "ok", "error"]
    list_filter = ["ok", "kind", "channel"]
    readonly_fields = [
        "sent_at", "channel", "kind", "title", "message", "notices", "ok", "error",
    ]  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TelegramChat)
class TelegramChatAdmin(admin.ModelAdmin):
    list_display = ["chat_id", "user", "note", "created_at"]
    fields = ["chat_id", "user", "note"]
