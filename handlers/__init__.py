"""comfy-relay: serverless ComfyUI generation.

Packages: ``contract`` (models shared by every side), ``workflow`` (pure graph logic), ``worker`` (the RunPod
handler beside ComfyUI), ``dispatch`` (AWS Lambda functions), ``local`` (emulators and the embedded local stack),
``cli`` (the ``comfy-relay`` command).
"""
