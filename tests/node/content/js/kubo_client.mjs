// Drives a dcm node with kubo-rpc-client exactly as an application would, and prints
// what it saw as one JSON object (the pytest side asserts on it).
// usage: node kubo_client.mjs NODE_URL TOKEN CAR_PATH
import { readFile } from 'node:fs/promises'
import { create } from 'kubo-rpc-client'

const [url, token, carPath] = process.argv.slice(2)
const ipfs = create({ url: `${url}/api/v0`, headers: { authorization: `Bearer ${token}` } })
const out = {}
const text = (chunks) => Buffer.concat(chunks.map((c) => Buffer.from(c))).toString()
const collect = async (it) => { const all = []; for await (const x of it) all.push(x); return all }

out.isOnline = await ipfs.isOnline()
out.id = (await ipfs.id()).id.toString()

// bytes, as a string and as a Uint8Array, with progress
out.helloCid = (await ipfs.add('hello')).cid.toString()
const progress = []
const big = new Uint8Array(600 * 1024).map((_, i) => i % 251)
out.bigCid = (await ipfs.add(big, { progress: (bytes, name) => progress.push([bytes, name]) })).cid.toString()
out.bigProgress = progress

// a tree, with progress
const treeProgress = []
const tree = await collect(ipfs.addAll([
  { path: 'tree/a.txt', content: new TextEncoder().encode('alpha\n') },
  { path: 'tree/sub/b.bin', content: big },
], { progress: (bytes, name) => treeProgress.push([bytes, name]) }))
out.tree = tree.map((e) => ({ path: e.path, cid: e.cid.toString(), size: e.size }))
out.treeProgress = treeProgress
const root = tree.find((e) => e.path === 'tree').cid

out.cat = text(await collect(ipfs.cat(`${root}/a.txt`)))
out.ls = (await collect(ipfs.ls(root))).map((e) => ({ name: e.name, type: e.type, size: e.size, cid: e.cid.toString() }))

// pins
const loose = (await ipfs.add('unpinned', { pin: false })).cid
out.pinnedBefore = (await collect(ipfs.pin.ls({ paths: [root] }))).map((p) => p.cid.toString())
out.pinAdd = (await ipfs.pin.add(loose)).toString()
out.pinRm = (await ipfs.pin.rm(loose)).toString()

// dag export, then import it back; and a CAR the node has never seen
const car = Buffer.concat((await collect(ipfs.dag.export(root))).map((c) => Buffer.from(c)))
out.exportBytes = car.length
out.reimported = (await collect(ipfs.dag.import([car]))).map((r) => r.root.cid.toString())
out.imported = (await collect(ipfs.dag.import([await readFile(carPath)]))).map((r) => r.root.cid.toString())
out.importedCat = text(await collect(ipfs.cat(out.imported[0])))

// blocks, dag get, refs, repo stat
const blockCid = await ipfs.block.put(new TextEncoder().encode('a raw block'))
out.blockPut = blockCid.toString()
const bs = await ipfs.block.stat(blockCid)
out.blockStat = { cid: bs.cid.toString(), size: bs.size }
const node = await ipfs.dag.get(root)
out.dagGetLinks = node.value.Links.map((l) => l.Name)
out.refs = (await collect(ipfs.refs(root, { recursive: true }))).map((r) => r.ref)
const rs = await ipfs.repo.stat()
out.repoStat = { numObjects: Number(rs.numObjects), repoSize: Number(rs.repoSize) }

// MFS
await ipfs.files.mkdir('/docs/notes', { parents: true })
await ipfs.files.write('/docs/notes/hi.txt', new TextEncoder().encode('hi there'), { create: true })
out.filesRead = text(await collect(ipfs.files.read('/docs/notes/hi.txt')))
await ipfs.files.cp(`/ipfs/${root}`, '/docs/tree')
out.filesLs = (await collect(ipfs.files.ls('/docs'))).map((e) => ({ name: e.name, type: e.type }))
const st = await ipfs.files.stat('/docs/notes/hi.txt')
out.filesStat = { cid: st.cid.toString(), size: st.size, type: st.type }
out.treeStat = (await ipfs.files.stat('/docs/tree')).cid.toString()
await ipfs.files.rm('/docs/tree', { recursive: true })
out.filesLsAfterRm = (await collect(ipfs.files.ls('/docs'))).map((e) => e.name)

// IPNS is refused in words
try {
  await ipfs.name.resolve('k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8').next()
  out.nameError = null
} catch (err) {
  out.nameError = err.message
}

console.log(JSON.stringify(out))
