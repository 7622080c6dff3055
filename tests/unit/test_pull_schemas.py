"""The Web API vectorizer of the pinned schemas and the pull-mode definitions of ``schemas/``:
what goes into the index, the data source, the skillset and the indexer for given settings."""

from __future__ import annotations

import pytest

from indexer.errors import ConfigurationError
from indexer.index_setup import pull_definitions, vectorizer_endpoint, wanted_schema
from indexer.model_versions import MODEL_VERSIONS
from indexer.schema import VECTOR_FIELD, VectorizerEndpoint, load_pull_definitions, load_schema, pull_indexer_name
from indexer.settings import Settings

ACCOUNT_ID = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/stimgx"
ENDPOINT = VectorizerEndpoint("https://func-x.azurewebsites.net/api/vectorize", key="k3y", auth_resource_id="api://app")


@pytest.mark.parametrize("model_version", sorted(MODEL_VERSIONS))
def test_every_pinned_schema_has_a_vectorizer_that_stays_out_until_a_uri_is_given(model_version):
    schema = load_schema(model_version)
    assert "vectorizers" not in schema.definition["vectorSearch"]  # created as before without a URI
    assert schema.vectorizer_name is None
    assert schema.with_vectorizer(None) is schema

    with_vectorizer = schema.with_vectorizer(ENDPOINT)

    assert with_vectorizer.pin == schema.pin  # the pin never depends on the vectorizer
    [vectorizer] = with_vectorizer.definition["vectorSearch"]["vectorizers"]
    assert vectorizer["kind"] == "customWebApi"
    assert vectorizer["customWebApiParameters"] == {
        "uri": ENDPOINT.uri,
        "httpMethod": "POST",
        "timeout": "PT30S",
        "httpHeaders": {"x-functions-key": "k3y"},
        "authResourceId": "api://app",
    }
    assert with_vectorizer.vectorizer_name == vectorizer["name"]
    assert "vectorizers" not in schema.definition["vectorSearch"]  # the cached schema is untouched
    # a padded schema (the Vision stand-in's --pad-to) keeps its vectorizer template
    assert schema.with_dimensions(1000).with_vectorizer(ENDPOINT).vectorizer_name == vectorizer["name"]


def test_the_settings_decide_the_vectorizer():
    assert vectorizer_endpoint(Settings()) is None
    endpoint = vectorizer_endpoint(Settings(SEARCH_VECTORIZER_URI="http://127.0.0.1:7071/api/vectorize"))
    assert endpoint == VectorizerEndpoint("http://127.0.0.1:7071/api/vectorize")
    assert "httpHeaders" not in endpoint.web_api_parameters() and "authResourceId" not in endpoint.web_api_parameters()
    with pytest.raises(ConfigurationError, match="SEARCH_VECTORIZER_URI"):
        vectorizer_endpoint(Settings(SEARCH_VECTORIZER_URI="func-x/api/vectorize"))
    schema = wanted_schema(Settings(SEARCH_VECTORIZER_URI="http://127.0.0.1:7071/api/vectorize"))
    assert schema.vectorizer_name is not None
    assert repr(VectorizerEndpoint("u", key="secret")).count("secret") == 0


def pull_settings(**extra: str) -> Settings:
    values = {
        "SEARCH_ENDPOINT": "https://srch-x.search.windows.net",
        "SEARCH_INDEX_NAME": "photos",
        "SEARCH_VECTORIZER_URI": ENDPOINT.uri,
        "SEARCH_VECTORIZER_KEY": "k3y",
        "IMAGES_STORAGE__blobServiceUri": "https://stimgx.blob.core.windows.net",
        "IMAGES_STORAGE_RESOURCE_ID": ACCOUNT_ID,
        "IMAGES_CONTAINER": "pictures",
        **extra,
    }
    return Settings(**values)


def test_the_pull_definitions_read_the_container_as_the_search_service_and_call_vectorize():
    definitions = pull_definitions(pull_settings())

    source = definitions.data_source
    assert source["type"] == "azureblob" and source["container"]["name"] == "pictures"
    assert source["credentials"]["connectionString"] == f"ResourceId={ACCOUNT_ID};"
    assert source["dataChangeDetectionPolicy"]["highWaterMarkColumnName"] == "metadata_storage_last_modified"
    assert source["dataDeletionDetectionPolicy"]["@odata.type"].endswith("NativeBlobSoftDeleteDeletionDetectionPolicy")
    [skill] = definitions.skillset["skills"]
    assert skill["@odata.type"] == "#Microsoft.Skills.Custom.WebApiSkill"
    assert skill["uri"] == ENDPOINT.uri and skill["httpHeaders"] == {"x-functions-key": "k3y"}
    assert "authResourceId" not in skill  # none configured
    entra = pull_definitions(pull_settings(SEARCH_VECTORIZER_AUTH_RESOURCE_ID="api://app"))
    assert entra.skillset["skills"][0]["authResourceId"] == "api://app"
    # The documented image path: the indexer's normalized image of the blob (an image blob has one).
    assert skill["context"] == "/document"
    assert {i["name"]: i["source"] for i in skill["inputs"]}["image"] == "/document/normalized_images/0"
    assert {i["source"] for i in skill["inputs"]} >= {
        "/document/metadata_storage_path",
        "/document/metadata_storage_size",
    }
    indexer = definitions.indexer
    assert indexer["name"] == pull_indexer_name("photos") == "photos-indexer"
    assert (indexer["dataSourceName"], indexer["skillsetName"], indexer["targetIndexName"]) == (
        source["name"],
        definitions.skillset["name"],
        "photos",
    )
    configuration = indexer["parameters"]["configuration"]
    assert configuration["imageAction"] == "generateNormalizedImages"
    assert "allowSkillsetToReadFileData" not in configuration  # the normalized image is the input
    assert configuration["indexedFileNameExtensions"].split(",") == [
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".bmp",
        ".tif",
        ".tiff",
    ]
    assert indexer["parameters"]["maxFailedItems"] == -1 and indexer["schedule"]["interval"] == "PT5M"
    # The key: base64Encode of metadata_storage_path, as UrlTokenEncode (indexer.keys).
    [key_mapping] = indexer["fieldMappings"]
    assert key_mapping["sourceFieldName"] == "metadata_storage_path" and key_mapping["targetFieldName"] == "id"
    assert key_mapping["mappingFunction"] == {
        "name": "base64Encode",
        "parameters": {"useHttpServerUtilityUrlTokenEncode": True},
    }
    assert "${" not in str(definitions)


@pytest.mark.parametrize("model_version", sorted(MODEL_VERSIONS))
def test_the_indexer_writes_every_field_the_push_path_writes(model_version):
    definitions = load_pull_definitions(
        {
            "SEARCH_INDEX_NAME": "i",
            "IMAGES_STORAGE_CONNECTION": "c",
            "IMAGES_CONTAINER": "images",
            "SEARCH_VECTORIZER_URI": "u",
        },
        vectorize=VectorizerEndpoint("u"),
    )
    schema = load_schema(model_version)
    targets = {m["targetFieldName"] for m in definitions.indexer["outputFieldMappings"]}
    assert targets == {VECTOR_FIELD, *schema.metadata_fields}
    [skill] = definitions.skillset["skills"]
    produced = {f"/document/{o['targetName']}" for o in skill["outputs"]}
    assert {m["sourceFieldName"] for m in definitions.indexer["outputFieldMappings"]} <= produced


def test_the_skills_tags_output_has_its_own_node_and_an_explicit_mapping():
    # Blob metadata `tags` (a string) reaches /document/tags; the skill's parsed tags (a string
    # collection) must not be written onto that node, so they get their own and their own mapping.
    definitions = load_pull_definitions(
        {
            "SEARCH_INDEX_NAME": "i",
            "IMAGES_STORAGE_CONNECTION": "c",
            "IMAGES_CONTAINER": "images",
            "SEARCH_VECTORIZER_URI": "u",
        },
        vectorize=VectorizerEndpoint("u"),
    )
    [skill] = definitions.skillset["skills"]
    [tags_output] = [o for o in skill["outputs"] if o["name"] == "tags"]
    assert tags_output["targetName"] not in ("tags", *(i["source"].rsplit("/", 1)[-1] for i in skill["inputs"]))
    [mapping] = [m for m in definitions.indexer["outputFieldMappings"] if m["targetFieldName"] == "tags"]
    assert mapping["sourceFieldName"] == f"/document/{tags_output['targetName']}"


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"SEARCH_ENDPOINT": ""}, "SEARCH_ENDPOINT"),
        ({"SEARCH_VECTORIZER_URI": ""}, "SEARCH_VECTORIZER_URI"),
        ({"IMAGES_STORAGE_RESOURCE_ID": ""}, "IMAGES_STORAGE_RESOURCE_ID"),
    ],
)
def test_pull_mode_names_the_setting_it_lacks(change, setting):
    with pytest.raises(ConfigurationError, match=setting):
        pull_definitions(pull_settings(**change))


def test_a_connection_string_is_used_where_one_is_configured():
    settings = pull_settings(IMAGES_STORAGE="UseDevelopmentStorage=true", IMAGES_STORAGE_RESOURCE_ID="")
    assert pull_definitions(settings).data_source["credentials"]["connectionString"] == "UseDevelopmentStorage=true"
