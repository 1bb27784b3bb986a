from django import forms
from django.conf import settings


class UploadForm(forms.Form):
    label_suffix = ""

    # A plain FileField, not ImageField: dermal decodes the image itself and says what is wrong
    # with a file it cannot read (ImageField would ask Pillow first, with a vaguer message).
    image = forms.FileField(label="Image of the skin lesion (JPEG, PNG or WebP)",
                            widget=forms.FileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}))
    force = forms.BooleanField(required=False, label="Analyse even if it does not look like a skin-lesion image")

    def clean_image(self):
        image = self.cleaned_data["image"]
        if image.size > settings.MAX_UPLOAD_BYTES:
            raise forms.ValidationError("This file is larger than %d MB." % settings.MAX_UPLOAD_MB)
        return image
