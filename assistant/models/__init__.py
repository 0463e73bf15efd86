"""The models, each behind LangChain's interface and chosen by a name: chat models (`llm`; the local GGUF in
`llama`, its packaged file in `model_file`) and embeddings (`embeddings`). `factory` picks among them."""
