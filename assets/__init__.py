"""MBRS Studio's data files, installed as the package ``mbrs_assets``: shipped models in ``models/``.

Found with ``importlib.resources.files("mbrs_assets")`` from a wheel or an
editable install alike (see ``mbrs_engine.model_files.shipped_models_dir``).
"""
